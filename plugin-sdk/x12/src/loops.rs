//! Implementation-guide loops: groups a transaction's flat segment list into
//! the loop tree its guide defines, and the helpers the typed models share to
//! turn loop trees into typed structs (reporting located problems) and back
//! into segments in guide order.

use crate::error::{Issue, IssueKind, Loc};
use crate::segment::{Located, Segment, short_eq};

/// What starts a loop: a segment identifier and, optionally, the codes one
/// of its elements must hold.
#[derive(Clone, Copy, Debug)]
pub struct Trigger {
    /// Segment identifier.
    pub id: &'static str,
    /// Element position checked (1-based).
    pub element: usize,
    /// Allowed values (any when empty).
    pub codes: &'static [&'static str],
}

impl Trigger {
    fn matches(&self, s: &Segment) -> bool {
        short_eq(&s.id, self.id)
            && (self.codes.is_empty()
                || self.codes.iter().any(|c| short_eq(c, s.get(self.element))))
    }
}

/// One loop of an implementation guide.
#[derive(Debug)]
pub struct LoopSpec {
    /// Loop identifier, e.g. `2100`.
    pub id: &'static str,
    /// The segment that starts it.
    pub trigger: Trigger,
    /// Loops nested in it.
    pub children: &'static [LoopSpec],
    /// A segment that closes it (the LE of an LS/LE pair).
    pub end: Option<&'static str>,
    /// Guide order of the segments that may follow the trigger (an empty
    /// table checks nothing). A segment ranked before the previous one, or
    /// one that follows a nested loop, is out of order.
    pub order: &'static [&'static str],
    /// Most repeats allowed under one parent (0 = no limit).
    pub max: u16,
}

/// Shorthand for a trigger on element 1 codes.
#[must_use]
pub const fn on(id: &'static str, codes: &'static [&'static str]) -> Trigger {
    Trigger {
        id,
        element: 1,
        codes,
    }
}

/// Shorthand for an HL trigger on its level code (HL03).
#[must_use]
pub const fn hl(codes: &'static [&'static str]) -> Trigger {
    Trigger {
        id: "HL",
        element: 3,
        codes,
    }
}

/// A loop as found in a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopNode {
    /// Loop identifier from its spec (`ST` for the transaction header).
    pub id: &'static str,
    /// Its own segments, the trigger first.
    pub segments: Vec<Located>,
    /// Nested loops in order.
    pub children: Vec<LoopNode>,
}

fn rank(order: &[&str], id: &str) -> usize {
    order
        .iter()
        .position(|o| short_eq(o, id))
        .unwrap_or(order.len())
}

/// Groups `body` (the segments between ST and SE) into loops under `root`,
/// reporting segments out of guide order and loops repeated beyond their
/// maximum to `cx`.
pub fn build(root: &'static LoopSpec, body: Vec<Located>, cx: &mut Cx<'_>) -> LoopNode {
    // Highest guide-order rank seen so far in each open loop.
    let mut ranks: Vec<usize> = vec![0];
    let mut stack: Vec<(&'static LoopSpec, LoopNode)> = vec![(
        root,
        LoopNode {
            id: root.id,
            segments: Vec::new(),
            children: Vec::new(),
        },
    )];
    for seg in body {
        let top = stack.len() - 1;
        if stack[top].0.end == Some(&*seg.segment.id) && top > 0 {
            stack[top].1.segments.push(seg);
            ranks.pop();
            let (_, node) = stack.pop().unwrap_or((root, empty()));
            if let Some(parent) = stack.last_mut() {
                parent.1.children.push(node);
            }
            continue;
        }
        let mut found = None;
        for level in (0..stack.len()).rev() {
            if let Some(child) = stack[level]
                .0
                .children
                .iter()
                .find(|c| c.trigger.matches(&seg.segment))
            {
                found = Some((level, child));
                break;
            }
            if stack[level].0.end.is_some() {
                // An LS/LE loop is closed only by its LE.
                break;
            }
        }
        match found {
            Some((level, child)) => {
                if child.max > 0 {
                    let count = stack[level]
                        .1
                        .children
                        .iter()
                        .filter(|c| std::ptr::eq(c.id, child.id) || c.id == child.id)
                        .count()
                        + usize::from(stack.len() > level + 1 && stack[level + 1].1.id == child.id);
                    if count >= child.max as usize {
                        cx.error(
                            &seg,
                            IssueKind::LoopRepeat {
                                loop_id: child.id.into(),
                                max: child.max,
                            },
                        );
                    }
                }
                while stack.len() > level + 1 {
                    ranks.pop();
                    if let Some((_, node)) = stack.pop()
                        && let Some(parent) = stack.last_mut()
                    {
                        parent.1.children.push(node);
                    }
                }
                ranks.push(0);
                stack.push((
                    child,
                    LoopNode {
                        id: child.id,
                        segments: {
                            // Most loops hold a handful of segments: one
                            // allocation instead of several regrowths.
                            let mut v = Vec::with_capacity(8);
                            v.push(seg);
                            v
                        },
                        children: Vec::new(),
                    },
                ));
            }
            None => {
                let (spec, node) = &mut stack[top];
                let after_loop = node.children.last().map(|c| c.id);
                let r = rank(spec.order, &seg.segment.id);
                let known = spec.order.is_empty() || r < spec.order.len();
                let misplaced = if let Some(child) = after_loop {
                    Some(format!("after loop {child}"))
                } else if known && !spec.order.is_empty() {
                    let last = ranks[top];
                    ranks[top] = last.max(r);
                    (r < last).then(|| "before a segment the guide puts earlier".to_owned())
                } else {
                    None
                };
                if !known {
                    cx.error(
                        &seg,
                        IssueKind::UnexpectedSegment {
                            segment: seg.segment.id.to_string(),
                            in_loop: node.id.to_owned(),
                        },
                    );
                } else if let Some(how) = misplaced {
                    cx.error(
                        &seg,
                        IssueKind::OutOfOrder {
                            segment: seg.segment.id.to_string(),
                            in_loop: node.id.to_owned(),
                            how,
                        },
                    );
                }
                stack[top].1.segments.push(seg);
            }
        }
    }
    while stack.len() > 1 {
        if let Some((_, node)) = stack.pop()
            && let Some(parent) = stack.last_mut()
        {
            parent.1.children.push(node);
        }
    }
    stack.pop().map_or_else(empty, |(_, n)| n)
}

fn empty() -> LoopNode {
    LoopNode {
        id: "",
        segments: Vec::new(),
        children: Vec::new(),
    }
}

/// Conversion context: where problems go and which interchange we are in.
pub struct Cx<'a> {
    /// Collected problems.
    pub issues: &'a mut Vec<Issue>,
    /// 1-based interchange index.
    pub interchange: u32,
}

impl Cx<'_> {
    /// The location of a segment.
    #[must_use]
    pub fn loc(&self, s: &Located) -> Loc {
        Loc {
            interchange: self.interchange,
            segment: s.number,
            in_transaction: s.in_transaction,
            segment_id: s.segment.id.to_string(),
            element: None,
        }
    }

    /// Converts a segment with `f`, reporting element problems as errors.
    pub fn typed<T>(&mut self, s: &Located, f: fn(&Segment) -> (T, crate::fields::Problems)) -> T {
        let (v, problems) = f(&s.segment);
        for (pos, kind) in problems {
            let loc = self.loc(s).at_element(pos);
            self.issues.push(Issue::error(loc, kind));
        }
        v
    }

    /// Converts an owned segment with `f` (moving its values), reporting
    /// element problems as errors.
    pub fn take<T>(
        &mut self,
        s: Located,
        id: &'static str,
        f: fn(Segment) -> (T, crate::fields::Problems),
    ) -> T {
        let (number, in_transaction) = (s.number, s.in_transaction);
        let (v, problems) = f(s.segment);
        for (pos, kind) in problems {
            let loc = Loc {
                interchange: self.interchange,
                segment: number,
                in_transaction,
                segment_id: id.to_owned(),
                element: Some(pos),
            };
            self.issues.push(Issue::error(loc, kind));
        }
        v
    }

    /// Reports an error at a segment.
    pub fn error(&mut self, s: &Located, kind: IssueKind) {
        let loc = self.loc(s);
        self.issues.push(Issue::error(loc, kind));
    }

    /// Reports a missing segment; `near` locates it (the loop's first segment).
    pub fn missing(&mut self, near: &Located, segment: &str, in_loop: &str) {
        self.error(
            near,
            IssueKind::MissingSegment {
                segment: segment.into(),
                in_loop: in_loop.into(),
            },
        );
    }
}

/// A typed model could not be built because a required segment is missing;
/// the problem has been reported to the [`Cx`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incomplete;

/// Appends `segments` sorted stably by the rank of their identifier in
/// `order` (unknown identifiers last), which reproduces guide order.
pub fn push_ordered(out: &mut Vec<Segment>, order: &[&str], mut segments: Vec<Segment>) {
    segments.sort_by_key(|s| order.iter().position(|o| *o == s.id).unwrap_or(order.len()));
    out.extend(segments);
}

/// Position-independent marker for where a typed loop was read: the segment
/// number of its first segment in the file and in the transaction. It is
/// not part of the JSON form and every two markers compare equal, so models
/// read from different files or built in memory compare by content only.
#[derive(Clone, Copy, Debug, Default, Eq)]
pub struct Pos {
    /// Segment number in the file, when read.
    pub number: Option<u32>,
    /// Segment position in the transaction set, when read.
    pub in_transaction: Option<u32>,
}

impl PartialEq for Pos {
    fn eq(&self, _: &Pos) -> bool {
        true
    }
}

impl Pos {
    /// The position of a located segment.
    #[must_use]
    pub fn of(s: &Located) -> Pos {
        Pos {
            number: Some(s.number),
            in_transaction: s.in_transaction,
        }
    }
}

/// A loop kept generically: its segments and nested loops in order (used
/// where billd reads a loop but does not type it, e.g. 837P 2410 drug
/// identification).
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct GenericLoop {
    /// Segments in order, the trigger first, nested loops flattened in.
    pub segments: Vec<Segment>,
}

impl GenericLoop {
    /// Flattens a loop node.
    #[must_use]
    pub fn from_node(node: LoopNode) -> GenericLoop {
        let mut segments = Vec::new();
        flatten(node, &mut segments);
        GenericLoop { segments }
    }
}

fn flatten(node: LoopNode, out: &mut Vec<Segment>) {
    out.extend(node.segments.into_iter().map(|l| l.segment));
    for c in node.children {
        flatten(c, out);
    }
}

/// An NM1 loop: the name and the segments that follow it (address,
/// references, contact, demographics) in order. Equality ignores `loop_id`.
#[derive(Clone, Debug, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Entity {
    /// Loop identifier (e.g. `2010AA`) when read; informative, not written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub loop_id: String,
    /// The NM1 segment.
    pub nm1: crate::segments::Nm1,
    /// Following segments of the loop (N3, N4, REF, PER, DMG, PRV, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<Segment>,
    /// Nested loops, kept generically.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nested: Vec<GenericLoop>,
}

impl PartialEq for Entity {
    fn eq(&self, other: &Entity) -> bool {
        self.nm1 == other.nm1 && self.other == other.other && self.nested == other.nested
    }
}

impl Entity {
    /// Reads an NM1-triggered loop.
    pub fn from_node(node: LoopNode, cx: &mut Cx<'_>) -> Entity {
        let loop_id = node.id.to_owned();
        let mut segs = node.segments.into_iter();
        let nm1 = segs
            .next()
            .map(|s| {
                cx.take(
                    s,
                    crate::segments::Nm1::ID,
                    crate::segments::Nm1::from_owned,
                )
            })
            .unwrap_or_default();
        Entity {
            loop_id,
            nm1,
            other: segs.map(|l| l.segment).collect(),
            nested: node
                .children
                .into_iter()
                .map(GenericLoop::from_node)
                .collect(),
        }
    }

    /// Writes the loop.
    pub fn write(&self, out: &mut Vec<Segment>) {
        out.push(self.nm1.to_segment());
        out.extend(self.other.iter().cloned());
        for n in &self.nested {
            out.extend(n.segments.iter().cloned());
        }
    }

    /// Puts `e` in `slot` when it is empty; otherwise (a loop repeated
    /// beyond its maximum, already reported by [`build`]) keeps its segments
    /// in `spill` so a lenient read loses nothing.
    pub fn keep_one(slot: &mut Option<Entity>, e: Entity, spill: &mut Vec<Segment>) {
        if slot.is_some() {
            e.write(spill);
        } else {
            *slot = Some(e);
        }
    }

    /// The first segment with this identifier among `other`.
    #[must_use]
    pub fn find(&self, id: &str) -> Option<&Segment> {
        self.other.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static LEAF: [LoopSpec; 1] = [LoopSpec {
        id: "L2",
        trigger: on("B", &[]),
        children: &[],
        end: None,
        order: &[],
        max: 0,
    }];
    static KIDS: [LoopSpec; 2] = [
        LoopSpec {
            id: "L1",
            trigger: on("A", &["X"]),
            children: &LEAF,
            end: None,
            order: &[],
            max: 0,
        },
        LoopSpec {
            id: "LS",
            trigger: on("LS", &[]),
            children: &[],
            end: Some("LE"),
            order: &[],
            max: 0,
        },
    ];
    static ROOT: LoopSpec = LoopSpec {
        id: "ST",
        trigger: on("ST", &[]),
        children: &KIDS,
        end: None,
        order: &[],
        max: 0,
    };

    fn located(ids: &[(&str, &str)]) -> Vec<Located> {
        ids.iter()
            .enumerate()
            .map(|(i, (id, q))| Located {
                segment: Segment::new(id, &[q]),
                number: i as u32 + 1,
                in_transaction: Some(i as u32 + 2),
            })
            .collect()
    }

    #[test]
    fn builds_nested_loops_and_pops_back_up() {
        let mut issues = Vec::new();
        let mut cx = Cx {
            issues: &mut issues,
            interchange: 1,
        };
        let tree = build(
            &ROOT,
            located(&[
                ("H", ""),
                ("A", "X"),
                ("C", ""),
                ("B", ""),
                ("D", ""),
                ("A", "Y"),
                ("A", "X"),
                ("LS", ""),
                ("A", "X"),
                ("LE", ""),
                ("Z", ""),
            ]),
            &mut cx,
        );
        // Z follows nested loops at the top level: out of order.
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].loc.segment, 11);
        assert!(matches!(issues[0].kind, IssueKind::OutOfOrder { .. }));
        assert_eq!(tree.segments.len(), 2, "H and trailing Z stay at the top");
        assert_eq!(tree.children.len(), 3);
        let first = &tree.children[0];
        assert_eq!(first.id, "L1");
        assert_eq!(first.segments.len(), 2);
        assert_eq!(first.children[0].id, "L2");
        // A*Y is not a trigger, so it stays in L2.
        assert_eq!(first.children[0].segments.len(), 3);
        assert_eq!(tree.children[1].id, "L1");
        let ls = &tree.children[2];
        assert_eq!(ls.id, "LS");
        // Inside LS, A*X does not open L1 above it: LS is closed only by LE.
        let ids: Vec<&str> = ls.segments.iter().map(|l| &*l.segment.id).collect();
        assert_eq!(ids, vec!["LS", "A", "LE"]);
        assert_eq!(tree.segments[1].segment.id, "Z");
    }

    #[test]
    fn order_and_repeat_limits_are_checked() {
        static ONCE: [LoopSpec; 1] = [LoopSpec {
            id: "N",
            trigger: on("N1", &[]),
            children: &[],
            end: None,
            order: &[],
            max: 1,
        }];
        static R: LoopSpec = LoopSpec {
            id: "ST",
            trigger: on("ST", &[]),
            children: &ONCE,
            end: None,
            order: &["BPR", "TRN", "REF"],
            max: 0,
        };
        let mut issues = Vec::new();
        let mut cx = Cx {
            issues: &mut issues,
            interchange: 1,
        };
        let _ = build(
            &R,
            located(&[
                ("BPR", ""),
                ("REF", ""),
                ("TRN", ""),
                ("N1", ""),
                ("N1", ""),
            ]),
            &mut cx,
        );
        let got: Vec<(u32, String)> = issues
            .iter()
            .map(|i| (i.loc.segment, i.kind.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    3,
                    "segment TRN out of order in loop ST (before a segment the guide puts earlier)"
                        .to_owned()
                ),
                (5, "loop N exceeds its maximum of 1".to_owned()),
            ]
        );
    }

    #[test]
    fn ordering_follows_the_guide_table() {
        let mut out = Vec::new();
        push_ordered(
            &mut out,
            &["CAS", "NM1", "REF", "DTM"],
            vec![
                Segment::new("DTM", &["1"]),
                Segment::new("X", &[]),
                Segment::new("REF", &["a"]),
                Segment::new("CAS", &[]),
                Segment::new("REF", &["b"]),
            ],
        );
        let ids: Vec<(&str, &str)> = out.iter().map(|s| ((&*s.id), s.get(1))).collect();
        assert_eq!(
            ids,
            vec![
                ("CAS", ""),
                ("REF", "a"),
                ("REF", "b"),
                ("DTM", "1"),
                ("X", "")
            ]
        );
    }
}
