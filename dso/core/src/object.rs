//! The object model: a shared object type is a sequential specification.
//!
//! A type's serde state, its operation enum, its result enum and its deterministic
//! [`SharedObject::apply`] are the single definition of its behaviour: the replica executes it,
//! and the linearizability checker and the model checker use it as their model. `apply` may
//! *park* the caller ([`Outcome::Parked`]); a later operation wakes it through
//! [`ApplyContext::wake`]. Parked callers are part of the object's state, so they are replicated
//! and hashed like everything else. Types are usually written with [`crate::shared`], which
//! derives the enums, `apply` and a typed client handle from plain methods.

use std::fmt::{self, Debug};
use std::future::Future;
use std::hash::Hash;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{CallError, DsoError};

/// Identifies one client call: its session and its sequence number in that session. Retries
/// carry the same id, which is how the node answers them without applying twice; a parked
/// caller is remembered by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CallId {
    /// The client session (chosen by the client, e.g. derived from a cloud thread's id).
    pub session: u64,
    /// Position of the call in its session, from 1.
    pub seq: u64,
}

/// What `apply` did with the caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome<R> {
    /// The call completed with this result.
    Done(R),
    /// The caller waits until a later operation wakes it with [`ApplyContext::wake`], or until
    /// `timeout_ms` passes, when [`SharedObject::expire`] decides its answer.
    Parked {
        /// How long the caller is willing to wait; `None` waits forever.
        timeout_ms: Option<u64>,
    },
}

impl<R> Outcome<R> {
    /// Maps the result of a completed call, leaving a parked one as it is.
    pub fn map<S>(self, f: impl FnOnce(R) -> S) -> Outcome<S> {
        match self {
            Outcome::Done(value) => Outcome::Done(f(value)),
            Outcome::Parked { timeout_ms } => Outcome::Parked { timeout_ms },
        }
    }
}

/// What `apply` may see and do besides the object's own state: who is calling, and which
/// parked callers its operation wakes (in the order woken).
#[derive(Debug)]
pub struct ApplyContext<R> {
    caller: CallId,
    wakeups: Vec<(CallId, R)>,
}

impl<R> ApplyContext<R> {
    /// A context for one call by `caller`.
    pub fn new(caller: CallId) -> Self {
        Self { caller, wakeups: Vec::new() }
    }

    /// The call being applied; a parking method stores it to wake the caller later.
    pub fn caller(&self) -> CallId {
        self.caller
    }

    /// Completes the parked call `waiter` with `result`.
    pub fn wake(&mut self, waiter: CallId, result: R) {
        self.wakeups.push((waiter, result));
    }

    /// The wakeups recorded so far, in order.
    pub fn into_wakeups(self) -> Vec<(CallId, R)> {
        self.wakeups
    }
}

/// An operation enum: names its method and encodes its arguments for the wire.
pub trait Operation: Clone + Debug + Eq + Hash + Serialize + DeserializeOwned + Send + Sync {
    /// Every method's name, in declaration order.
    const METHODS: &'static [&'static str];
    /// The method name, as sent on the wire.
    fn method(&self) -> &'static str;
    /// Whether the method takes `&self` (changes nothing).
    fn is_read_only(&self) -> bool;
    /// The arguments, encoded as a tuple.
    fn encode_args(&self) -> Vec<u8>;
    /// Rebuilds an operation from its method name and encoded arguments.
    fn decode(method: &str, args: &[u8]) -> Result<Self, CallError>;
}

/// A shared object type: the sequential specification of one kind of object.
pub trait SharedObject:
    Clone + Debug + Eq + Hash + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The name the type is registered and addressed by.
    const TYPE_NAME: &'static str;
    /// Its operations.
    type Op: Operation;
    /// Its operations' results.
    type Ret: Clone + Debug + Eq + Hash + Serialize + DeserializeOwned + Send + Sync;
    /// Its typed client handle.
    type Handle: From<ObjectRef<Self>>;

    /// Applies one operation; deterministic, no I/O, no clock, no randomness.
    fn apply(&mut self, op: Self::Op, ctx: &mut ApplyContext<Self::Ret>) -> Outcome<Self::Ret>;

    /// Encodes a result for the wire: only the method's own return value, so client and server
    /// agree as long as that method's signature does (not the whole enum's layout).
    fn encode_ret(ret: &Self::Ret) -> Vec<u8>;

    /// Decodes the wire form of `method`'s result.
    fn decode_ret(method: &str, bytes: &[u8]) -> Result<Self::Ret, String>;

    /// The parked call `waiter` ran out of time: remove it and give its answer, or `None` if it
    /// is not parked here (any more). Other parked callers it unblocks are woken through `ctx`.
    fn expire(&mut self, waiter: CallId, ctx: &mut ApplyContext<Self::Ret>) -> Option<Self::Ret>;
}

/// The bincode configuration used for everything the project encodes.
pub fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a value with the project's bincode configuration.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode_config())
        .expect("encoding an in-memory value into a Vec cannot fail")
}

/// How many bytes [`encode`] would give for `value`, counted without building them.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, bincode_config())
        .expect("encoding an in-memory value cannot fail");
    size.bytes_written
}

/// The most a decoded value may claim to allocate (64 MiB), checked before allocating: a
/// length prefix inside a frame can say anything, so without a bound one small frame could make
/// the decoder ask for exabytes. It also bounds `frame_bytes_max`.
pub const DECODE_BYTES_MAX: usize = 64 << 20;

/// Decodes a whole buffer; trailing bytes are an error, as is a claim over [`DECODE_BYTES_MAX`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let config = bincode_config().with_limit::<DECODE_BYTES_MAX>();
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config).map_err(|error| error.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - used));
    }
    Ok(value)
}

/// Encodes a method's argument tuple (used by `#[shared]`).
pub fn encode_args<T: Serialize>(args: &T) -> Vec<u8> {
    encode(args)
}

/// Decodes a method's argument tuple, naming the method in the error (used by `#[shared]`).
pub fn decode_args<T: DeserializeOwned>(type_name: &str, method: &str, args: &[u8]) -> Result<T, CallError> {
    decode(args).map_err(|reason| CallError::BadArguments {
        type_name: type_name.to_string(),
        method: method.to_string(),
        reason,
    })
}

/// The encoded answer to one call, on its way.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, DsoError>> + Send + 'a>>;

/// Sends encoded calls and returns their encoded answers: what a typed handle needs from a
/// client (the host's `Dso` implements it).
pub trait Caller: Send + Sync + 'static {
    /// Invokes `method` with encoded `args` on the object of type `type_name` under `key`.
    fn invoke_encoded<'a>(
        &'a self,
        key: &'a str,
        type_name: &'static str,
        method: &'static str,
        args: Vec<u8>,
    ) -> CallFuture<'a>;
}

/// A typed reference to the object of type `T` under a key: sends `T`'s operations. The
/// handles `#[shared]` generates wrap one.
pub struct ObjectRef<T> {
    caller: Arc<dyn Caller>,
    key: Arc<str>,
    _type: PhantomData<fn() -> T>,
}

impl<T> ObjectRef<T> {
    /// A reference to the `T` under `key`, sent through `caller`.
    pub fn new(caller: Arc<dyn Caller>, key: Arc<str>) -> Self {
        Self { caller, key, _type: PhantomData }
    }
}

impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        Self { caller: self.caller.clone(), key: self.key.clone(), _type: PhantomData }
    }
}

impl<T> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectRef").field("key", &self.key).finish()
    }
}

impl<T: SharedObject> ObjectRef<T> {
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Sends one operation and decodes its result.
    pub async fn call(&self, op: T::Op) -> Result<T::Ret, DsoError> {
        let method = op.method();
        let bytes = self.caller.invoke_encoded(&self.key, T::TYPE_NAME, method, op.encode_args()).await?;
        T::decode_ret(method, &bytes).map_err(DsoError::Codec)
    }
}
