//! Faults armed on demand (control API or scenario file): each applies to
//! the next `count` CORE requests, in the order they were armed.

use serde::{Deserialize, Serialize};

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// HTTP 500 with an empty body.
    Http500,
    /// HTTP 429 with `Retry-After: retry_after_seconds`.
    Http429,
    /// The normal answer, after `delay_ms`.
    Slow,
    /// A well-formed envelope whose Payload is not X12.
    MalformedX12,
    /// A CORE envelope error (`error_code`, default `PayloadTypeIncorrect`).
    EnvelopeError,
    /// Credentials refused whatever they are.
    BadCredentials,
}

/// A fault and how many requests it hits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// What goes wrong.
    pub kind: FaultKind,
    /// How many requests it applies to (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// Retry-After of `http429` (default 2).
    #[serde(default)]
    pub retry_after_seconds: Option<u32>,
    /// Delay of `slow` (default 25000, beyond CORE's 20 s).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// ErrorCode of `envelope-error`.
    #[serde(default)]
    pub error_code: Option<String>,
}

fn one() -> u32 {
    1
}

/// The armed faults.
#[derive(Debug, Default)]
pub struct Faults {
    queue: Vec<FaultSpec>,
}

impl Faults {
    /// Arms a fault after those already armed.
    pub fn arm(&mut self, spec: FaultSpec) {
        if spec.count > 0 {
            self.queue.push(spec);
        }
    }

    /// Disarms every fault.
    pub fn clear(&mut self) {
        self.queue.clear();
    }

    /// The fault for the next request, if any (counting it down).
    pub fn take(&mut self) -> Option<FaultSpec> {
        let first = self.queue.first_mut()?;
        first.count -= 1;
        let out = first.clone();
        if first.count == 0 {
            self.queue.remove(0);
        }
        Some(out)
    }

    /// What is still armed.
    #[must_use]
    pub fn pending(&self) -> &[FaultSpec] {
        &self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_in_order_and_count_down() {
        let mut f = Faults::default();
        let spec = |kind, count| FaultSpec {
            kind,
            count,
            retry_after_seconds: None,
            delay_ms: None,
            error_code: None,
        };
        f.arm(spec(FaultKind::Http500, 2));
        f.arm(spec(FaultKind::Http429, 1));
        let kinds: Vec<_> = std::iter::from_fn(|| f.take()).map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [FaultKind::Http500, FaultKind::Http500, FaultKind::Http429]
        );
    }
}
