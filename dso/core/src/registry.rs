//! Type erasure for the node: the node stores objects of many types under string keys and
//! dispatches encoded calls to them. The [`Registry`] says which types a server knows.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::object::{decode, encode, ApplyContext, CallId, Operation, Outcome, SharedObject};
use crate::CallError;

/// The result of applying an encoded call to an object of unknown static type.
#[derive(Debug, PartialEq, Eq)]
pub struct EncodedOutcome {
    /// The caller's encoded result, or `None` if it parked (or, on expiry, was not parked).
    pub result: Option<Vec<u8>>,
    /// How long a parked caller waits (`None`: forever).
    pub timeout_ms: Option<u64>,
    /// Parked callers this call woke, with their encoded results, in wake order.
    pub wakeups: Vec<(CallId, Vec<u8>)>,
}

/// A shared object behind a vtable: what the node needs of any registered type.
pub trait DynObject: Send + Sync + fmt::Debug {
    /// The registered type name.
    fn type_name(&self) -> &'static str;
    /// Decodes `method(args)` and applies it for `caller`.
    fn apply_encoded(
        &mut self,
        caller: CallId,
        method: &str,
        args: &[u8],
    ) -> Result<EncodedOutcome, CallError>;
    /// Whether `method(args)` only reads (false if it does not decode).
    fn is_read_only_call(&self, method: &str, args: &[u8]) -> bool;
    /// Times out a parked call: its encoded answer (`result`, `None` if it was not parked
    /// here) and the parked callers that this unblocks.
    fn expire_encoded(&mut self, waiter: CallId) -> EncodedOutcome;
    /// The state, encoded (for snapshots and state transfer).
    fn encode_state(&self) -> Vec<u8>;
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn DynObject>;
    /// For equality across the vtable.
    fn as_any(&self) -> &dyn Any;
    /// Whether `other` is the same type in the same state.
    fn eq_dyn(&self, other: &dyn DynObject) -> bool;
    /// Feeds the state to a hasher.
    fn hash_into(&self, hasher: &mut dyn Hasher);
}

impl<T: SharedObject> DynObject for T {
    fn type_name(&self) -> &'static str {
        T::TYPE_NAME
    }

    fn apply_encoded(
        &mut self,
        caller: CallId,
        method: &str,
        args: &[u8],
    ) -> Result<EncodedOutcome, CallError> {
        let op = T::Op::decode(method, args)?;
        let mut ctx = ApplyContext::new(caller);
        let outcome = self.apply(op, &mut ctx);
        let wakeups = encode_wakeups::<T>(ctx);
        Ok(match outcome {
            Outcome::Done(ret) => {
                EncodedOutcome { result: Some(T::encode_ret(&ret)), timeout_ms: None, wakeups }
            }
            Outcome::Parked { timeout_ms } => EncodedOutcome { result: None, timeout_ms, wakeups },
        })
    }

    fn is_read_only_call(&self, method: &str, args: &[u8]) -> bool {
        T::Op::decode(method, args).is_ok_and(|op| op.is_read_only())
    }

    fn expire_encoded(&mut self, waiter: CallId) -> EncodedOutcome {
        let mut ctx = ApplyContext::new(waiter);
        let result = self.expire(waiter, &mut ctx).map(|ret| T::encode_ret(&ret));
        EncodedOutcome { result, timeout_ms: None, wakeups: encode_wakeups::<T>(ctx) }
    }

    fn encode_state(&self) -> Vec<u8> {
        encode(self)
    }

    fn clone_box(&self) -> Box<dyn DynObject> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn eq_dyn(&self, other: &dyn DynObject) -> bool {
        other.as_any().downcast_ref::<T>().is_some_and(|other| other == self)
    }

    fn hash_into(&self, mut hasher: &mut dyn Hasher) {
        T::TYPE_NAME.hash(&mut hasher);
        self.hash(&mut hasher);
    }
}

/// An object held in node state: clonable, comparable and hashable like the rest of it.
#[derive(Debug)]
pub struct ObjectBox(pub Box<dyn DynObject>);

impl Clone for ObjectBox {
    fn clone(&self) -> Self {
        ObjectBox(self.0.clone_box())
    }
}

impl PartialEq for ObjectBox {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(&*other.0)
    }
}
impl Eq for ObjectBox {}

impl Hash for ObjectBox {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_into(state);
    }
}

/// Builds an object from its encoded state.
type FromState = fn(&[u8]) -> Result<Box<dyn DynObject>, String>;

/// How to build one registered type.
#[derive(Clone, Copy)]
struct TypeEntry {
    from_state: FromState,
    default: Option<fn() -> Box<dyn DynObject>>,
}

/// The object types a server knows, by name. Built-ins are always present; user types are added
/// with [`Registry::register`] (a server builder registers them so).
#[derive(Clone)]
pub struct Registry {
    types: BTreeMap<&'static str, TypeEntry>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.types.keys()).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        let mut registry = Registry { types: BTreeMap::new() };
        register_builtins(&mut registry);
        registry
    }
}

impl Registry {
    /// Registers a type whose objects are created explicitly with an initial state.
    pub fn register<T: SharedObject>(&mut self) -> &mut Self {
        self.types.insert(T::TYPE_NAME, TypeEntry { from_state: from_state::<T>, default: None });
        self
    }

    /// Registers a type whose objects spring into being with `T::default()` on first use.
    pub fn register_with_default<T: SharedObject + Default>(&mut self) -> &mut Self {
        self.types.insert(
            T::TYPE_NAME,
            TypeEntry { from_state: from_state::<T>, default: Some(default_object::<T>) },
        );
        self
    }

    /// Builds an object from an encoded initial state.
    pub fn create(&self, type_name: &str, state: &[u8]) -> Result<ObjectBox, CallError> {
        let entry = self.entry(type_name)?;
        (entry.from_state)(state)
            .map(ObjectBox)
            .map_err(|reason| CallError::BadState { type_name: type_name.to_string(), reason })
    }

    /// Builds the default object of a type, if it has one.
    pub fn create_default(&self, type_name: &str) -> Result<Option<ObjectBox>, CallError> {
        Ok(self.entry(type_name)?.default.map(|build| ObjectBox(build())))
    }

    /// The registered name equal to `type_name`, if there is one (a name that outlives the
    /// call that carried it).
    pub fn type_name(&self, type_name: &str) -> Option<&'static str> {
        self.types.get_key_value(type_name).map(|(name, _)| *name)
    }

    fn entry(&self, type_name: &str) -> Result<&TypeEntry, CallError> {
        self.types.get(type_name).ok_or_else(|| CallError::UnknownType { type_name: type_name.to_string() })
    }
}

fn from_state<T: SharedObject>(state: &[u8]) -> Result<Box<dyn DynObject>, String> {
    decode::<T>(state).map(|object| Box::new(object) as Box<dyn DynObject>)
}

fn default_object<T: SharedObject + Default>() -> Box<dyn DynObject> {
    Box::new(T::default())
}

fn encode_wakeups<T: SharedObject>(ctx: ApplyContext<T::Ret>) -> Vec<(CallId, Vec<u8>)> {
    ctx.into_wakeups().into_iter().map(|(id, ret)| (id, T::encode_ret(&ret))).collect()
}

/// Registers every built-in type (those without a natural empty state need an initial one).
fn register_builtins(registry: &mut Registry) {
    macro_rules! register {
        ($Type:ident => $accessor:ident) => {
            registry.register_with_default::<crate::objects::$Type>()
        };
        ($Type:ident) => {
            registry.register::<crate::objects::$Type>()
        };
    }
    macro_rules! register_all {
        ([$($Type:ident $(=> $accessor:ident)?,)*]) => {
            $(register!($Type $(=> $accessor)?);)*
        };
    }
    crate::for_each_builtin!(register_all);
}
