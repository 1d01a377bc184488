//! The configuration store in S3: one object holds the configuration; `create` writes it with
//! `If-None-Match: *` and `replace` with `If-Match: <ETag>`, so S3's conditional writes make it
//! a compare-and-swap register, the modern form of discovery through a bucket.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::config::Configuration;
use super::store::{ConfigStore, StoreError, Versioned};

/// A configuration store at `s3://bucket/prefix/config.json`.
#[derive(Clone, Debug)]
pub struct S3ConfigStore {
    client: Client,
    bucket: String,
    key: String,
}

impl S3ConfigStore {
    /// A store using `client` (built for AWS or, with an endpoint override, any S3 service).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        let key = if prefix.is_empty() { "config.json".to_string() } else { format!("{prefix}/config.json") };
        Self { client, bucket: bucket.into(), key }
    }

    /// A store with credentials and region from the environment (the AWS default chain), and
    /// `endpoint` overriding the S3 endpoint (for S3-compatible services and local stand-ins).
    pub async fn from_environment(bucket: impl Into<String>, prefix: &str, endpoint: Option<&str>) -> Self {
        let shared = aws_config::load_from_env().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint).force_path_style(true);
        }
        Self::new(Client::from_conf(config.build()), bucket, prefix)
    }

    async fn put(&self, config: &Configuration, condition: Condition<'_>) -> Result<Versioned, StoreError> {
        config.validate().map_err(StoreError::Invalid)?;
        let body = serde_json::to_vec_pretty(config).expect("a configuration serializes");
        let request =
            self.client.put_object().bucket(&self.bucket).key(&self.key).body(ByteStream::from(body));
        let request = match condition {
            Condition::Absent => request.if_none_match("*"),
            Condition::Version(etag) => request.if_match(etag),
        };
        let output = request.send().await.map_err(|error| conflict_or_unavailable(&error))?;
        let version = output.e_tag().ok_or_else(|| StoreError::Corrupt("S3 returned no ETag".into()))?;
        Ok(Versioned { config: config.clone(), version: version.to_string() })
    }
}

enum Condition<'a> {
    Absent,
    Version(&'a str),
}

/// A failed precondition (412) or a concurrent conditional write (409) is a conflict; anything
/// else means the store is unavailable.
fn conflict_or_unavailable<E>(error: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = error.raw_response().map(|response| response.status().as_u16());
    match (status, error.code()) {
        (Some(412 | 409), _) | (_, Some("PreconditionFailed" | "ConditionalRequestConflict")) => {
            StoreError::Conflict
        }
        _ => StoreError::Unavailable(DisplayErrorContext(error).to_string()),
    }
}

impl ConfigStore for S3ConfigStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        let output = match self.client.get_object().bucket(&self.bucket).key(&self.key).send().await {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(error) => return Err(StoreError::Unavailable(DisplayErrorContext(&error).to_string())),
        };
        let version =
            output.e_tag().ok_or_else(|| StoreError::Corrupt("S3 returned no ETag".into()))?.to_string();
        let bytes =
            output.body.collect().await.map_err(|e| StoreError::Unavailable(e.to_string()))?.into_bytes();
        let config = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(Versioned { config, version }))
    }

    async fn create(&self, config: &Configuration) -> Result<Versioned, StoreError> {
        self.put(config, Condition::Absent).await
    }

    async fn replace(&self, version: &str, config: &Configuration) -> Result<Versioned, StoreError> {
        self.put(config, Condition::Version(version)).await
    }
}
