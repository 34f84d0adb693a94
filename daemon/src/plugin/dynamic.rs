//! Calling a plugin's export by name with JSON, and describing a component.
//!
//! `billd plugins call` and the harness CLI work with any world and any
//! function without compiled-in knowledge of their types: the JSON input is
//! converted against the function's parameter types as the component
//! declares them, and the result back to JSON. Names stay as in the WIT
//! (kebab-case). Conventions: a record is an object; an `option` is `null`
//! or the value; an enum is its case name; a variant is `"case"` or
//! `{"case": payload}`; a `result` is `{"ok": …}` or `{"err": …}`.

use super::bindings::coordination_api::PriorPayer;
use super::coordination::CallContext;
use super::manifest::{Manifest, PackagePaths, World};
use super::{CallError, LoadError, LoadedPlugin, PluginEngine, begin_call, finish_call};
use serde_json::{Map, Value as Json};
use wasmtime::component::types::{ComponentItem, Type};
use wasmtime::component::{Component, Val};

/// Why a call by name could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DynCallError {
    /// No such export in the plugin's world.
    #[error("plugin {plugin} has no function {func:?} (it exports: {available})")]
    NoSuchFunction {
        /// The plugin.
        plugin: String,
        /// The name asked for.
        func: String,
        /// What it does export.
        available: String,
    },
    /// The input JSON does not fit the parameters.
    #[error("input does not fit {func}: at {path}: {reason}")]
    Input {
        /// The function.
        func: String,
        /// Where in the input (dotted).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The call failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Calls `func` of the plugin's exported interface with a fresh instance.
/// `input` holds the parameters after the idempotency key: the value itself
/// when there is one, an object by parameter name when there are several.
pub async fn call_json(
    plugin: &LoadedPlugin,
    func: &str,
    key: &str,
    input: &Json,
) -> Result<Json, DynCallError> {
    call_json_with(plugin, func, key, input, CallContext::default()).await
}

/// [`call_json`] with `context` for the plugin's host imports to answer
/// from during the call (for `submit-claims`, the prior payers of
/// [`prior_payers_context`]).
pub async fn call_json_with(
    plugin: &LoadedPlugin,
    func: &str,
    key: &str,
    input: &Json,
    context: CallContext,
) -> Result<Json, DynCallError> {
    let (mut store, instance) = plugin.raw_instance().await?;
    store.data_mut().context = context;
    let iface = plugin.info().world.export_interface();
    let no_such = |available: String| DynCallError::NoSuchFunction {
        plugin: plugin.name().to_string(),
        func: func.to_string(),
        available,
    };
    let ty = instance_functions(plugin);
    let f = instance
        .get_export_index(&mut store, None, iface)
        .and_then(|i| instance.get_export_index(&mut store, Some(&i), func))
        .and_then(|i| instance.get_func(&mut store, i))
        .ok_or_else(|| no_such(ty.join(", ")))?;
    let fty = f.ty(&store);
    let params: Vec<(String, Type)> = fty.params().map(|(n, t)| (n.to_string(), t)).collect();
    let input_err = |path: String, reason: String| DynCallError::Input {
        func: func.to_string(),
        path,
        reason,
    };
    let mut args = Vec::with_capacity(params.len());
    let rest = match params.first() {
        Some((_, Type::String)) => {
            args.push(Val::String(key.to_string()));
            &params[1..]
        }
        _ => &params[..],
    };
    match rest.len() {
        0 => {}
        1 => {
            args.push(json_to_val(input, &rest[0].1, &rest[0].0).map_err(|(p, r)| input_err(p, r))?)
        }
        _ => {
            let obj = input.as_object().ok_or_else(|| {
                input_err("(input)".into(), "expected an object of parameters".into())
            })?;
            for (name, t) in rest {
                let v = obj.get(name).unwrap_or(&Json::Null);
                args.push(json_to_val(v, t, name).map_err(|(p, r)| input_err(p, r))?);
            }
        }
    }
    let mut results = vec![Val::Bool(false); fty.results().len()];
    let backstop = begin_call(&mut store);
    let result =
        tokio::time::timeout(backstop, f.call_async(&mut store, &args, &mut results)).await;
    finish_call(&mut store, result)?;
    Ok(match results.len() {
        0 => Json::Null,
        1 => val_to_json(&results[0]),
        _ => Json::Array(results.iter().map(val_to_json).collect()),
    })
}

/// What a payer plugin's `coordination.prior-payers` import answers during
/// a `submit-claims` call by name, from `json`: an object mapping each
/// claim's `claim-id` to its earlier payers, first payer first, each a
/// `prior-payer` record in this module's JSON convention (checked against
/// the type the plugin's own import declares).
///
/// # Errors
/// [`DynCallError::Input`], naming the place in `json`, when it does not
/// fit, and when the plugin does not import `coordination` (contract
/// 0.4.0) and so could never ask.
pub fn prior_payers_context(
    plugin: &LoadedPlugin,
    json: &Json,
) -> Result<CallContext, DynCallError> {
    let input_err = |path: String, reason: String| DynCallError::Input {
        func: "coordination.prior-payers".into(),
        path,
        reason,
    };
    let Some(record) = prior_payer_type(plugin) else {
        return Err(input_err(
            "(prior payers)".into(),
            format!(
                "plugin {} does not import billd:connector/coordination (contract 0.4.0), so it cannot read prior payers",
                plugin.name()
            ),
        ));
    };
    let obj = json.as_object().ok_or_else(|| {
        input_err(
            "(prior payers)".into(),
            "expected an object mapping claim ids to lists of prior payers".into(),
        )
    })?;
    let mut context = CallContext::new();
    for (claim_id, payers) in obj {
        let list = payers
            .as_array()
            .ok_or_else(|| input_err(claim_id.clone(), "expected a list of prior payers".into()))?;
        let mut typed = Vec::with_capacity(list.len());
        for (i, p) in list.iter().enumerate() {
            let path = format!("{claim_id}[{i}]");
            let val = json_to_val(p, &record, &path).map_err(|(p, r)| input_err(p, r))?;
            let payer: PriorPayer = serde_json::from_value(val_to_rust_json(&val))
                .map_err(|e| input_err(path, e.to_string()))?;
            typed.push(payer);
        }
        context = context.with_prior_payers(claim_id, typed);
    }
    Ok(context)
}

/// The `prior-payer` record type as the plugin's `coordination` import
/// declares it, if it imports one.
fn prior_payer_type(plugin: &LoadedPlugin) -> Option<Type> {
    let (component, engine) = plugin.component();
    let ty = component.component_type();
    let (_, item) = ty
        .imports(engine)
        .find(|(name, _)| name.starts_with("billd:connector/coordination@"))?;
    let ComponentItem::ComponentInstance(instance) = item.ty else {
        return None;
    };
    let (_, func) = instance
        .exports(engine)
        .find(|(name, _)| *name == "prior-payers")?;
    let ComponentItem::ComponentFunc(func) = func.ty else {
        return None;
    };
    match func.results().next()? {
        Type::List(list) => Some(list.ty()),
        _ => None,
    }
}

/// How names are written in JSON: as the WIT has them (this module's
/// convention), or as serde writes the host's generated bindings (fields
/// in snake case, enum and variant cases in upper camel case, results
/// tagged `Ok`/`Err`).
#[derive(Clone, Copy, PartialEq)]
enum Names {
    Wit,
    Rust,
}

impl Names {
    fn field(self, name: &str) -> String {
        match self {
            Names::Wit => name.to_string(),
            Names::Rust => name.replace('-', "_"),
        }
    }

    fn case(self, name: &str) -> String {
        match self {
            Names::Wit => name.to_string(),
            Names::Rust => name
                .split('-')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect(),
        }
    }
}

/// A value in the JSON shape serde gives the host's generated bindings.
fn val_to_rust_json(v: &Val) -> Json {
    val_to_json_as(v, Names::Rust)
}

fn instance_functions(plugin: &LoadedPlugin) -> Vec<String> {
    match plugin.info().world {
        super::World::PayerConnector => vec![
            "check-eligibility",
            "claim-status",
            "submit-claims",
            "fetch-acknowledgments",
            "fetch-remittances",
        ],
        super::World::EhrConnector => vec![
            "appointments",
            "patients-changed",
            "coverages-changed",
            "encounters-changed",
        ],
        super::World::CollectionsConnector => {
            vec!["place-accounts", "recall-accounts", "fetch-agency-updates"]
        }
    }
    .into_iter()
    .map(String::from)
    .collect()
}

type ConvError = (String, String);

fn json_to_val(v: &Json, ty: &Type, path: &str) -> Result<Val, ConvError> {
    let err = |reason: String| (path.to_string(), reason);
    let int = |lo: i128, hi: i128| -> Result<i128, ConvError> {
        let n = v
            .as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
            .ok_or_else(|| err(format!("expected an integer, found {}", kind(v))))?;
        if n < lo || n > hi {
            return Err(err(format!("{n} is out of range {lo}..={hi}")));
        }
        Ok(n)
    };
    Ok(match ty {
        Type::Bool => Val::Bool(
            v.as_bool()
                .ok_or_else(|| err(format!("expected true or false, found {}", kind(v))))?,
        ),
        Type::S8 => Val::S8(int(i8::MIN.into(), i8::MAX.into())? as i8),
        Type::U8 => Val::U8(int(0, u8::MAX.into())? as u8),
        Type::S16 => Val::S16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        Type::U16 => Val::U16(int(0, u16::MAX.into())? as u16),
        Type::S32 => Val::S32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        Type::U32 => Val::U32(int(0, u32::MAX.into())? as u32),
        Type::S64 => Val::S64(int(i64::MIN.into(), i64::MAX.into())? as i64),
        Type::U64 => Val::U64(int(0, u64::MAX.into())? as u64),
        Type::Float32 => Val::Float32(
            v.as_f64()
                .ok_or_else(|| err(format!("expected a number, found {}", kind(v))))?
                as f32,
        ),
        Type::Float64 => Val::Float64(
            v.as_f64()
                .ok_or_else(|| err(format!("expected a number, found {}", kind(v))))?,
        ),
        Type::Char => {
            let s = v.as_str().ok_or_else(|| {
                err(format!(
                    "expected a one-character string, found {}",
                    kind(v)
                ))
            })?;
            let mut cs = s.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(err("expected exactly one character".into())),
            }
        }
        Type::String => Val::String(
            v.as_str()
                .ok_or_else(|| err(format!("expected a string, found {}", kind(v))))?
                .to_string(),
        ),
        Type::List(l) => {
            let items = v
                .as_array()
                .ok_or_else(|| err(format!("expected an array, found {}", kind(v))))?;
            let t = l.ty();
            Val::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| json_to_val(x, &t, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Record(r) => {
            let obj = v
                .as_object()
                .ok_or_else(|| err(format!("expected an object, found {}", kind(v))))?;
            let mut fields = Vec::new();
            let known: Vec<&str> = r.fields().map(|f| f.name).collect();
            if let Some(extra) = obj.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(err(format!(
                    "unknown field {extra:?} (fields: {})",
                    known.join(", ")
                )));
            }
            for f in r.fields() {
                let p = format!("{path}.{}", f.name);
                let x = match obj.get(f.name) {
                    Some(x) => x,
                    None if matches!(f.ty, Type::Option(_)) => &Json::Null,
                    None => return Err((p, "missing field".into())),
                };
                fields.push((f.name.to_string(), json_to_val(x, &f.ty, &p)?));
            }
            Val::Record(fields)
        }
        Type::Tuple(t) => {
            let items = v
                .as_array()
                .ok_or_else(|| err(format!("expected an array, found {}", kind(v))))?;
            let types: Vec<Type> = t.types().collect();
            if items.len() != types.len() {
                return Err(err(format!("expected {} items", types.len())));
            }
            Val::Tuple(
                items
                    .iter()
                    .zip(&types)
                    .enumerate()
                    .map(|(i, (x, t))| json_to_val(x, t, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Variant(var) => {
            let (case, payload) = case_of(v).ok_or_else(|| {
                err(format!(
                    "expected \"case\" or {{\"case\": value}}, found {}",
                    kind(v)
                ))
            })?;
            let c = var.cases().find(|c| c.name == case).ok_or_else(|| {
                err(format!(
                    "unknown case {case:?} (cases: {})",
                    var.cases().map(|c| c.name).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let p = match (&c.ty, payload) {
                (Some(t), Some(x)) => Some(Box::new(json_to_val(x, t, &format!("{path}.{case}"))?)),
                (Some(_), None) => return Err(err(format!("case {case:?} needs a value"))),
                (None, _) => None,
            };
            Val::Variant(case.to_string(), p)
        }
        Type::Enum(e) => {
            let s = v
                .as_str()
                .ok_or_else(|| err(format!("expected a case name, found {}", kind(v))))?;
            if !e.names().any(|n| n == s) {
                return Err(err(format!(
                    "unknown case {s:?} (cases: {})",
                    e.names().collect::<Vec<_>>().join(", ")
                )));
            }
            Val::Enum(s.to_string())
        }
        Type::Option(o) => match v {
            Json::Null => Val::Option(None),
            x => Val::Option(Some(Box::new(json_to_val(x, &o.ty(), path)?))),
        },
        Type::Result(r) => {
            let (case, payload) = case_of(v)
                .filter(|(c, _)| *c == "ok" || *c == "err")
                .ok_or_else(|| err("expected {\"ok\": …} or {\"err\": …}".into()))?;
            let t = if case == "ok" { r.ok() } else { r.err() };
            let inner = match (t, payload) {
                (Some(t), Some(x)) => {
                    Some(Box::new(json_to_val(x, &t, &format!("{path}.{case}"))?))
                }
                (Some(_), None) => return Err(err(format!("{case} needs a value"))),
                (None, _) => None,
            };
            Val::Result(if case == "ok" { Ok(inner) } else { Err(inner) })
        }
        Type::Flags(f) => {
            let items = v.as_array().ok_or_else(|| {
                err(format!(
                    "expected an array of flag names, found {}",
                    kind(v)
                ))
            })?;
            let names: Vec<&str> = f.names().collect();
            let mut out = Vec::new();
            for x in items {
                let s = x
                    .as_str()
                    .filter(|s| names.contains(s))
                    .ok_or_else(|| err(format!("unknown flag (flags: {})", names.join(", "))))?;
                out.push(s.to_string());
            }
            Val::Flags(out)
        }
        other => return Err(err(format!("cannot pass a {other:?} from JSON"))),
    })
}

fn case_of(v: &Json) -> Option<(&str, Option<&Json>)> {
    match v {
        Json::String(s) => Some((s.as_str(), None)),
        Json::Object(m) if m.len() == 1 => m.iter().next().map(|(k, x)| (k.as_str(), Some(x))),
        _ => None,
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Converts a component value to JSON with the conventions above.
pub fn val_to_json(v: &Val) -> Json {
    val_to_json_as(v, Names::Wit)
}

fn val_to_json_as(v: &Val, names: Names) -> Json {
    let to = |x: &Val| val_to_json_as(x, names);
    match v {
        Val::Bool(b) => Json::Bool(*b),
        Val::S8(n) => (*n).into(),
        Val::U8(n) => (*n).into(),
        Val::S16(n) => (*n).into(),
        Val::U16(n) => (*n).into(),
        Val::S32(n) => (*n).into(),
        Val::U32(n) => (*n).into(),
        Val::S64(n) => (*n).into(),
        Val::U64(n) => (*n).into(),
        Val::Float32(n) => {
            serde_json::Number::from_f64(f64::from(*n)).map_or(Json::Null, Json::Number)
        }
        Val::Float64(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Val::Char(c) => Json::String(c.to_string()),
        Val::String(s) => Json::String(s.clone()),
        Val::List(xs) | Val::Tuple(xs) | Val::FixedLengthList(xs) => {
            Json::Array(xs.iter().map(to).collect())
        }
        Val::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, x)| (names.field(k), to(x)))
                .collect::<Map<_, _>>(),
        ),
        Val::Variant(case, None) | Val::Enum(case) => Json::String(names.case(case)),
        Val::Variant(case, Some(x)) => Json::Object(Map::from_iter([(names.case(case), to(x))])),
        Val::Option(None) => Json::Null,
        Val::Option(Some(x)) => to(x),
        Val::Result(r) => {
            let (k, x) = match r {
                Ok(x) => (names.case("ok"), x),
                Err(x) => (names.case("err"), x),
            };
            Json::Object(Map::from_iter([(
                k,
                x.as_ref().map_or(Json::Null, |x| to(x)),
            )]))
        }
        Val::Flags(fs) => Json::Array(fs.iter().map(|f| Json::String(f.clone())).collect()),
        Val::Map(pairs) => Json::Array(
            pairs
                .iter()
                .map(|(a, b)| Json::Array(vec![to(a), to(b)]))
                .collect(),
        ),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => {
            Json::String("(handle)".into())
        }
    }
}

/// What `billd plugins inspect` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// The manifest (`None` for a bare component with no `plugin.toml`
    /// beside it).
    pub manifest: Option<Manifest>,
    /// The world: the manifest's, or for a bare component the one whose
    /// interface it exports.
    pub world: Option<World>,
    /// The component's sha256.
    pub sha256: String,
    /// The component's size in bytes.
    pub size_bytes: u64,
    /// What the component imports, by name.
    pub imports: Vec<String>,
    /// What it exports: each interface with its functions' signatures.
    pub exports: Vec<(String, Vec<String>)>,
    /// Whether the exports include the interface the world needs (for a
    /// bare component: whether it exports any world's interface).
    pub implements_world: bool,
}

/// Whether `path` names a component file with no manifest beside it.
fn is_bare_component(path: &std::path::Path) -> bool {
    path.is_file()
        && path.extension().is_some_and(|x| x == "wasm")
        && !PackagePaths::locate(path).manifest.is_file()
}

/// Reads a package and describes its component (compiling it, not running
/// it).
pub fn inspect(engine: &PluginEngine, path: &std::path::Path) -> Result<Inspection, LoadError> {
    let (manifest, component_path, sha256) = if is_bare_component(path) {
        let bytes = std::fs::read(path).map_err(|e| LoadError::ComponentRead {
            plugin: path.display().to_string(),
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        (None, path.to_path_buf(), super::signing::sha256_hex(&bytes))
    } else {
        let (m, c, sha, _) = super::package_hashes(path)?;
        (Some(m), c, sha)
    };
    let plugin = manifest
        .as_ref()
        .map_or_else(|| path.display().to_string(), |m| m.name.clone());
    let bytes = std::fs::read(&component_path).map_err(|e| LoadError::ComponentRead {
        plugin: plugin.clone(),
        path: component_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let component = Component::new(engine.engine(), &bytes).map_err(|e| LoadError::Component {
        plugin: plugin.clone(),
        reason: format!("not a valid component: {e:#}"),
    })?;
    let ct = component.component_type();
    let e = engine.engine();
    let imports = ct.imports(e).map(|(n, _)| n.to_string()).collect();
    let mut exports = Vec::new();
    for (name, ext) in ct.exports(e) {
        let funcs = match &ext.ty {
            ComponentItem::ComponentInstance(i) => i
                .exports(e)
                .filter_map(|(f, x)| match x.ty {
                    ComponentItem::ComponentFunc(ft) => Some(signature(f, &ft)),
                    _ => None,
                })
                .collect(),
            ComponentItem::ComponentFunc(ft) => vec![signature(name, ft)],
            _ => Vec::new(),
        };
        exports.push((name.to_string(), funcs));
    }
    let exported = |w: World| exports.iter().any(|(n, _)| n == w.export_interface());
    let (world, implements_world) = match &manifest {
        Some(m) => (Some(m.world), exported(m.world)),
        None => {
            let found = [
                World::PayerConnector,
                World::EhrConnector,
                World::CollectionsConnector,
            ]
            .into_iter()
            .find(|w| exported(*w));
            (found, found.is_some())
        }
    };
    Ok(Inspection {
        manifest,
        world,
        sha256,
        size_bytes: bytes.len() as u64,
        imports,
        exports,
        implements_world,
    })
}

fn signature(name: &str, f: &wasmtime::component::types::ComponentFunc) -> String {
    let params: Vec<String> = f
        .params()
        .map(|(n, t)| format!("{n}: {}", type_name(&t)))
        .collect();
    let results: Vec<String> = f.results().map(|t| type_name(&t)).collect();
    if results.is_empty() {
        format!("{name}: func({})", params.join(", "))
    } else {
        format!(
            "{name}: func({}) -> {}",
            params.join(", "),
            results.join(", ")
        )
    }
}

fn type_name(t: &Type) -> String {
    match t {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", type_name(&l.ty())),
        Type::Option(o) => format!("option<{}>", type_name(&o.ty())),
        Type::Result(r) => format!(
            "result<{}, {}>",
            r.ok().map_or("_".into(), |t| type_name(&t)),
            r.err().map_or("_".into(), |t| type_name(&t))
        ),
        Type::Record(r) => format!(
            "record {{ {} }}",
            r.fields().map(|f| f.name).collect::<Vec<_>>().join(", ")
        ),
        Type::Variant(v) => format!(
            "variant {{ {} }}",
            v.cases().map(|c| c.name).collect::<Vec<_>>().join(", ")
        ),
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Tuple(t) => format!(
            "tuple<{}>",
            t.types()
                .map(|t| type_name(&t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}"),
    }
}
