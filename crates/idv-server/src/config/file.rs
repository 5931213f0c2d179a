//! The configuration file: TOML with the same settings as the flags, each
//! named as its flag without the dashes (`data-dir = "/var/lib/idv"`), as
//! Keycloak's `keycloak.conf` names its options after its flags. It is the
//! file `--config` or `IDV_CONFIG` names, else `./idv.toml` if it exists.
//!
//! Its values take the place of the defaults, so flags and environment
//! variables still override them: flag, then environment, then file, then
//! default. A key that is not a setting is an error, never ignored.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args as _, Command, FromArgMatches as _};

use super::settings::{ENV_ONLY, Settings};

/// The file read when neither `--config` nor `IDV_CONFIG` names one, if it
/// exists in the working directory.
pub const DEFAULT_FILE: &str = "idv.toml";

/// The flag naming the file, which is no key of it.
const CONFIG_KEY: &str = "config";

/// `idv serve`'s command line, as [`Settings`] declares it.
pub fn command() -> Command {
    Settings::augment_args(Command::new("serve"))
}

impl Settings {
    /// These settings (parsed from `argv`, which starts with `serve`, and
    /// the environment) with the configuration file's values in place of
    /// defaults. Without a file, they are returned as they are. The file
    /// read is in [`Settings::config`].
    pub fn with_file<I, T>(self, argv: I) -> anyhow::Result<Settings>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let path = match self.config.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            Some(path) => path.clone(),
            None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Settings { config: None, ..self }),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let in_file = |e: anyhow::Error| anyhow!("{}: {e}", path.display());
        let cmd = with_defaults(command(), &text).map_err(in_file)?;
        let mut settings = parse(cmd, argv).map_err(in_file)?;
        settings.config = Some(path);
        Ok(settings)
    }
}

/// Parses `argv` with `cmd`, an error as one line.
fn parse<I, T>(cmd: Command, argv: I) -> anyhow::Result<Settings>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = cmd
        .try_get_matches_from(argv)
        .map_err(|e| anyhow!("{}", one_line(&e)))?;
    Ok(Settings::from_arg_matches(&matches)?)
}

/// `cmd` with the values of the configuration file `text` as its defaults.
fn with_defaults(mut cmd: Command, text: &str) -> anyhow::Result<Command> {
    let doc = toml_edit::Document::parse(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))?;
    for (key, item) in doc.as_table().iter() {
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key) && key != CONFIG_KEY)
        else {
            bail!("{}", unknown(key, &cmd));
        };
        // Checked as the flag's values are, when the command line is parsed.
        let values = values(key, item, arg.get_value_delimiter().is_some())?;
        let id = arg.get_id().clone();
        cmd = cmd.mut_arg(id, |a| a.default_values(values));
    }
    Ok(cmd)
}

/// A key's value as the command line would give it: strings as they are,
/// numbers and booleans written out; an array (or a comma-separated string)
/// for a setting that takes a list.
fn values(key: &str, item: &toml_edit::Item, list: bool) -> anyhow::Result<Vec<String>> {
    let scalar = |v: &toml_edit::Value| match v {
        toml_edit::Value::String(s) => Some(s.value().clone()),
        toml_edit::Value::Integer(i) => Some(i.value().to_string()),
        toml_edit::Value::Boolean(b) => Some(b.value().to_string()),
        _ => None,
    };
    let value = item.as_value();
    let found = match (value, list) {
        (Some(toml_edit::Value::Array(items)), true) => items.iter().map(scalar).collect(),
        (Some(toml_edit::Value::String(s)), true) => Some(s.value().split(',').map(str::to_owned).collect()),
        (Some(v), false) => scalar(v).map(|s| vec![s]),
        _ => None,
    };
    found.ok_or_else(|| {
        let expected = if list {
            "an array of strings or a comma-separated string"
        } else {
            "a string, a number, true or false"
        };
        anyhow!("`{key}` must be {expected}, not {}", item.type_name())
    })
}

/// Why `key` is no setting, with the nearest one.
fn unknown(key: &str, cmd: &Command) -> String {
    let dashed = key.replace('_', "-");
    if let Some(secret) = ENV_ONLY.iter().find(|s| file_key(s.env) == dashed) {
        return format!(
            "`{key}` is not read from files: set the environment variable {} (secrets stay out of files)",
            secret.env
        );
    }
    let known: Vec<&str> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| *l != CONFIG_KEY)
        .collect();
    if known.contains(&dashed.as_str()) {
        format!("unknown setting `{key}` (did you mean `{dashed}`?)")
    } else {
        format!("unknown setting `{key}`; the settings are {}", known.join(", "))
    }
}

/// `IDV_MASTER_KEY` → `master-key`.
fn file_key(env: &str) -> String {
    env.trim_start_matches("IDV_").to_lowercase().replace('_', "-")
}

/// A clap error's message, without its `error: ` prefix and usage hints.
fn one_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line without its environment variables, so that the
    /// tests see flags, file and defaults only (the environment's place in
    /// the order is tested by starting `idv serve`, in the `idv` crate).
    fn without_env(cmd: Command) -> Command {
        cmd.mut_args(|a| a.env(None::<&str>))
    }

    fn settings(argv: &[&str], file: &str) -> anyhow::Result<Settings> {
        let cmd = with_defaults(without_env(command()), file)?;
        parse(cmd, std::iter::once("serve").chain(argv.iter().copied()))
    }

    const FILE: &str = r#"
        # A comment.
        trust-domain = "file.example"
        token-ttl = "2m"
        auth-failure-limit = 600
        dpop-require-nonce = true
        webhook-hosts = ["a.example", "*.b.example"]
        listen = "127.0.0.1:9000"
    "#;

    #[test]
    fn a_flag_beats_the_file_which_beats_the_default() -> anyhow::Result<()> {
        let s = settings(
            &["--trust-domain", "flag.example", "--webhook-hosts", "c.example"],
            FILE,
        )?;
        assert_eq!(s.trust_domain, "flag.example", "flag over file");
        assert_eq!(s.webhook_hosts, ["c.example"], "flag over file");
        assert_eq!(s.token_ttl, "2m", "file over default");
        assert_eq!(s.auth_failure_limit, 600);
        assert!(s.dpop_require_nonce);
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.job_lease, "15s", "default");
        let s = settings(&[], FILE)?;
        assert_eq!(s.trust_domain, "file.example");
        assert_eq!(s.webhook_hosts, ["a.example", "*.b.example"]);
        let s = settings(&[], "webhook-hosts = \"a.example,b.example\"")?;
        assert_eq!(s.webhook_hosts, ["a.example", "b.example"]);
        let s = settings(&[], "")?;
        assert_eq!(s.trust_domain, "idv.local");
        assert!(!s.dpop_require_nonce);
        Ok(())
    }

    #[test]
    fn defaults_written_in_the_file_change_nothing() -> anyhow::Result<()> {
        // Every setting written in a file at its default changes nothing.
        let cmd = without_env(command());
        let mut file = String::new();
        for arg in cmd.get_arguments() {
            let (Some(long), [value]) = (arg.get_long(), arg.get_default_values()) else {
                continue;
            };
            file.push_str(&format!("{long} = {:?}\n", value.to_string_lossy()));
        }
        let from_file = format!("{:?}", settings(&[], &file)?);
        let defaults = format!("{:?}", settings(&[], "")?);
        assert_eq!(from_file, defaults);
        Ok(())
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = |file: &str| match settings(&[], file) {
            Ok(s) => format!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err("data_dir = \"x\""),
            "unknown setting `data_dir` (did you mean `data-dir`?)"
        );
        assert!(
            err("port = 80").starts_with("unknown setting `port`; the settings are listen, data-dir, "),
            "{}",
            err("port = 80")
        );
        assert!(
            err("config = \"other.toml\"").starts_with("unknown setting `config`; the settings are listen, "),
            "the file names no other file"
        );
        assert_eq!(
            err("master_key = \"00\""),
            "`master_key` is not read from files: set the environment variable IDV_MASTER_KEY \
             (secrets stay out of files)"
        );
        assert_eq!(
            err("[listen]\nport = 1"),
            "`listen` must be a string, a number, true or false, not table"
        );
    }

    #[test]
    fn values_are_checked_as_flags_are() {
        let err = |file: &str| settings(&[], file).map(|_| ()).unwrap_err().to_string();
        assert!(err("listen = \"nowhere\"").starts_with("invalid value 'nowhere' for '--listen <LISTEN>'"));
        assert!(err("auth-failure-limit = 1").starts_with("invalid value '1' for '--auth-failure-limit"));
        assert_eq!(
            err("webhook-hosts = 3"),
            "`webhook-hosts` must be an array of strings or a comma-separated string, not integer"
        );
        assert_eq!(
            err("listen = 1.5"),
            "`listen` must be a string, a number, true or false, not float"
        );
        assert!(err("listen = ").contains("line 1"), "{}", err("listen = "));
    }
}
