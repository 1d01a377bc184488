//! What a typed handle needs from a client: a way to send an encoded call. The host's client
//! implements [`Caller`]; the handles `#[shared]` generates wrap an [`ObjectRef`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use crate::object::{Operation, SharedObject};
use crate::protocol::Action;
use crate::DsoError;

/// The answer to one call, on its way.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, DsoError>> + Send + 'a>>;

/// Sends encoded calls and returns their encoded answers (a client).
pub trait Caller: Send + Sync + 'static {
    /// Sends `action` to the object of type `type_name` under `key`.
    fn call_encoded<'a>(&'a self, key: &'a str, type_name: &'static str, action: Action) -> CallFuture<'a>;
}

/// A typed reference to the object of type `T` under a key: sends `T`'s operations.
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
        let action = Action::Invoke { method: method.to_string(), args: op.encode_args() };
        let bytes = self.caller.call_encoded(&self.key, T::TYPE_NAME, action).await?;
        T::decode_ret(method, &bytes).map_err(DsoError::Codec)
    }
}
