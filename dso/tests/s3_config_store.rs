//! The S3 configuration store against a real S3 API: moto's server (PyPI `moto[server]`),
//! started on loopback by this test and stopped when it ends. `.ci/run` installs it.

#![cfg(not(madsim))]

mod common;

use std::sync::Arc;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use common::{compare_and_swap_contract, config, racing_writers};
use crucial_dso::cluster::s3::S3ConfigStore;
use crucial_dso::cluster::{ConfigStore, StoreError};

fn client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_is_a_compare_and_swap_register() {
    let moto = crucial_testkit::moto().unwrap();
    let s3 = client(&moto.endpoint);
    s3.create_bucket().bucket("crucial").send().await.unwrap();
    let store = S3ConfigStore::new(s3.clone(), "crucial", "/cluster-a/");
    compare_and_swap_contract(&store).await;

    // Racing writers through separate store handles: every successful replace is one epoch.
    let stores: Vec<_> =
        (0..3).map(|_| Arc::new(S3ConfigStore::new(s3.clone(), "crucial", "cluster-a"))).collect();
    let before = store.load().await.unwrap().unwrap().config.epoch;
    assert_eq!(racing_writers(stores, 10).await, before + 30);

    let missing_bucket = S3ConfigStore::new(s3, "no-such-bucket", "x");
    assert!(matches!(missing_bucket.create(&config(1, 1)).await, Err(StoreError::Unavailable(_))));
}
