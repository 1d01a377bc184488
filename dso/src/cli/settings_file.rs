//! `--config FILE`: the same settings as the flags, in TOML (`bind = "0.0.0.0:11222"`,
//! `rf = 3`, `token-file = "/etc/crucial/token"`, ...), under the flags' names. A flag given on
//! the command line wins over the file; the file wins over the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::{Deserialize, Serialize};

use super::{Args, LogFormat};

/// Every setting a file may hold; absent ones keep the flag's value.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct SettingsFile {
    bind: Option<SocketAddr>,
    token_file: Option<PathBuf>,
    insecure: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    tls_name: Option<String>,
    metrics_bind: Option<SocketAddr>,
    frame_bytes_max: Option<usize>,
    connections_max: Option<usize>,
    session_calls_max: Option<usize>,
    sessions_max: Option<usize>,
    object_bytes_max: Option<usize>,
    discovery: Option<String>,
    rf: Option<usize>,
    suspect_after_ms: Option<u64>,
    s3_endpoint: Option<String>,
    advertise: Option<String>,
    member_id: Option<u64>,
    threads: Option<usize>,
    busy_poll_us: Option<u64>,
    peer_coalesce_us: Option<u64>,
    log_format: Option<LogFormat>,
}

/// Calls `$apply!(field, is_option)` for every setting, in one list for reading and writing.
macro_rules! each_setting {
    ($apply:ident) => {
        $apply!(bind, value);
        $apply!(token_file, option);
        $apply!(insecure, value);
        $apply!(tls_cert, option);
        $apply!(tls_key, option);
        $apply!(tls_ca, option);
        $apply!(tls_name, value);
        $apply!(metrics_bind, option);
        $apply!(frame_bytes_max, value);
        $apply!(connections_max, value);
        $apply!(session_calls_max, value);
        $apply!(sessions_max, value);
        $apply!(object_bytes_max, value);
        $apply!(discovery, parsed);
        $apply!(rf, value);
        $apply!(suspect_after_ms, value);
        $apply!(s3_endpoint, option);
        $apply!(advertise, option);
        $apply!(member_id, option);
        $apply!(threads, option);
        $apply!(busy_poll_us, value);
        $apply!(peer_coalesce_us, value);
        $apply!(log_format, value);
    };
}

impl SettingsFile {
    /// Reads and checks `path`.
    pub(crate) fn read(path: &Path) -> Result<SettingsFile, String> {
        let text =
            std::fs::read_to_string(path).map_err(|error| format!("--config {}: {error}", path.display()))?;
        toml::from_str(&text).map_err(|error| format!("--config {}: {error}", path.display()))
    }

    /// Sets in `args` what this file holds and the command line (`matches`) did not give.
    pub(crate) fn apply(self, args: &mut Args, matches: &ArgMatches) -> Result<(), String> {
        let from_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        macro_rules! apply {
            ($field:ident, value) => {
                if let (Some(value), false) = (self.$field, from_command_line(stringify!($field))) {
                    args.$field = value;
                }
            };
            ($field:ident, option) => {
                if let (Some(value), false) = (self.$field, from_command_line(stringify!($field))) {
                    args.$field = Some(value);
                }
            };
            ($field:ident, parsed) => {
                if let (Some(text), false) = (self.$field, from_command_line(stringify!($field))) {
                    args.$field =
                        Some(text.parse().map_err(|error| format!("{}: {error}", stringify!($field)))?);
                }
            };
        }
        each_setting!(apply);
        Ok(())
    }

    /// The settings `args` holds, as a file would say them.
    pub(crate) fn of(args: &Args) -> SettingsFile {
        let mut file = SettingsFile::default();
        macro_rules! take {
            ($field:ident, value) => {
                file.$field = Some(args.$field.clone());
            };
            ($field:ident, option) => {
                file.$field = args.$field.clone();
            };
            ($field:ident, parsed) => {
                file.$field = args.$field.as_ref().map(ToString::to_string);
            };
        }
        each_setting!(take);
        file
    }

    /// This file's text.
    pub(crate) fn to_toml(&self) -> String {
        toml::to_string(self).expect("settings are plain values")
    }
}
