//! Which provider answers: flags, then config, then the environment's
//! conventions, then the local model.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alp_profiles::Home;
use alp_profiles::config::{ProviderKind, ProviderSpec, Resolved};

use crate::local::{DEFAULT_MODEL_FILE, LocalProvider};
use crate::provider::{Provider, ProviderError};
use crate::remote::{ApiKey, RemoteConfig, RemoteProvider, Wire, WithFallback};

/// What the command line asked for.
#[derive(Debug, Default, Clone)]
pub struct Choice {
    /// `--provider NAME`.
    pub provider: Option<String>,
    /// `--model NAME` (remote providers).
    pub model: Option<String>,
    /// `--model-path FILE` (the local provider).
    pub model_path: Option<PathBuf>,
}

/// Reads an environment variable (a parameter so tests can fake it).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, ignoring empty values.
pub fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// The chosen provider.
pub enum Selected {
    Local(LocalProvider),
    Remote(Box<dyn Provider>),
}

impl std::fmt::Debug for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Selected({} / {})", self.provider().name(), self.provider().model())
    }
}

impl Selected {
    pub fn provider(&self) -> &dyn Provider {
        match self {
            Selected::Local(p) => p,
            Selected::Remote(p) => p.as_ref(),
        }
    }
}

/// Providers the environment names, by the ecosystem's conventions.
pub fn env_providers(env: Env<'_>) -> Vec<RemoteConfig> {
    let mut out = Vec::new();
    if env("OPENAI_API_KEY").is_some() || env("OPENAI_BASE_URL").is_some() {
        out.push(RemoteConfig {
            name: "openai".into(),
            wire: Wire::OpenAi,
            base_url: env("OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into()),
            model: env("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
            api_key: env("OPENAI_API_KEY").map(ApiKey),
            key_hint: "the OPENAI_API_KEY environment variable".into(),
            max_attempts: 0,
            idle_timeout: Duration::ZERO,
        });
    }
    if env("ANTHROPIC_API_KEY").is_some() || env("ANTHROPIC_BASE_URL").is_some() {
        out.push(RemoteConfig {
            name: "anthropic".into(),
            wire: Wire::Anthropic,
            base_url: env("ANTHROPIC_BASE_URL").unwrap_or_else(|| "https://api.anthropic.com".into()),
            model: env("ANTHROPIC_MODEL").unwrap_or_else(|| "claude-haiku-4-5".into()),
            api_key: env("ANTHROPIC_API_KEY").map(ApiKey),
            key_hint: "the ANTHROPIC_API_KEY environment variable".into(),
            max_attempts: 0,
            idle_timeout: Duration::ZERO,
        });
    }
    if let Some(host) = env("OLLAMA_HOST") {
        let host = if host.contains("://") { host } else { format!("http://{host}") };
        // OLLAMA_HOST may omit the port; Ollama's default is 11434.
        let authority = host.split("://").nth(1).unwrap_or("");
        let host = if authority.trim_end_matches('/').contains(':') {
            host
        } else {
            format!("{}:11434", host.trim_end_matches('/'))
        };
        out.push(RemoteConfig {
            name: "ollama".into(),
            wire: Wire::OpenAi,
            base_url: format!("{}/v1", host.trim_end_matches('/')),
            model: env("OLLAMA_MODEL").unwrap_or_else(|| "llama3.2".into()),
            api_key: None,
            key_hint: "nowhere (Ollama needs no key)".into(),
            max_attempts: 0,
            idle_timeout: Duration::ZERO,
        });
    }
    out
}

/// The provider names `--provider` accepts here: configured ones, those
/// the environment's conventions provide, and `local`.
pub fn known_providers(resolved: &Resolved, env: Env<'_>) -> Vec<String> {
    let mut names: Vec<String> = resolved.providers.keys().cloned().collect();
    names.extend(env_providers(env).into_iter().map(|c| c.name));
    names.push("local".into());
    names
}

/// Chooses and builds the provider.
pub fn select(resolved: &Resolved, home: &Home, choice: &Choice, env: Env<'_>) -> Result<Selected, ProviderError> {
    let from_env = env_providers(env);
    let configured = resolved.config.model.provider.as_str();
    let name = match (&choice.provider, configured) {
        (Some(p), _) => p.clone(),
        (None, p) if !p.is_empty() => p.to_owned(),
        (None, _) if choice.model_path.is_some() => "local".into(),
        (None, _) => match from_env.as_slice() {
            [] => "local".into(),
            [one] => one.name.clone(),
            several => {
                let names: Vec<&str> = several.iter().map(|c| c.name.as_str()).collect();
                return Err(ProviderError::Config(format!(
                    "the environment names several providers ({}); pick one with --provider or model.provider",
                    names.join(", ")
                )));
            }
        },
    };
    if name == "local" {
        if choice.model.is_some() {
            return Err(ProviderError::Config(
                "--model names a remote model; for the local provider use --model-path FILE".into(),
            ));
        }
        return local(resolved, home, choice).map(Selected::Local);
    }
    remote(&name, resolved, choice, &from_env, 0).map(Selected::Remote)
}

fn remote(
    name: &str,
    resolved: &Resolved,
    choice: &Choice,
    from_env: &[RemoteConfig],
    depth: u8,
) -> Result<Box<dyn Provider>, ProviderError> {
    let attempts = resolved.config.model.max_attempts;
    let idle = resolved.config.model.idle_timeout.0.max(Duration::from_secs(1));
    let (mut cfg, fallback) = if let Some(spec) = resolved.providers.get(name) {
        (RemoteConfig { idle_timeout: idle, ..from_spec(name, spec, attempts)? }, spec.fallback.clone())
    } else if let Some(cfg) = from_env.iter().find(|c| c.name == name) {
        (RemoteConfig { max_attempts: attempts, idle_timeout: idle, ..cfg.clone() }, None)
    } else {
        let mut known: Vec<&str> = resolved.providers.keys().map(String::as_str).collect();
        known.extend(from_env.iter().map(|c| c.name.as_str()));
        known.push("local");
        let conventions = ["openai", "anthropic", "ollama"];
        let meant = alp_profiles::suggest::closest(name, known.iter().copied().chain(conventions))
            .map(|s| format!("did you mean {s:?}? "))
            .unwrap_or_default();
        return Err(ProviderError::Config(format!(
            "unknown provider {name:?}; {meant}known here: {} (add a [providers.{name}] table to config.toml, \
             or set OPENAI_API_KEY / ANTHROPIC_API_KEY / OLLAMA_HOST)",
            known.join(", ")
        )));
    };
    if depth == 0
        && let Some(m) = &choice.model
    {
        cfg.model = m.clone();
    }
    let primary: Box<dyn Provider> = Box::new(RemoteProvider::new(cfg)?);
    match fallback {
        Some(f) if depth < 3 && f != name => {
            let fallback = remote(&f, resolved, &Choice::default(), from_env, depth + 1)?;
            Ok(Box::new(WithFallback { primary, fallback }))
        }
        Some(f) if depth >= 3 || f == name => {
            Err(ProviderError::Config(format!("provider {name}: the fallback chain loops or is deeper than 3")))
        }
        _ => Ok(primary),
    }
}

fn from_spec(name: &str, spec: &ProviderSpec, default_attempts: u32) -> Result<RemoteConfig, ProviderError> {
    let wire = match spec.kind {
        ProviderKind::Openai => Wire::OpenAi,
        ProviderKind::Anthropic => Wire::Anthropic,
    };
    let base_url = spec.base_url.clone().unwrap_or_else(|| match wire {
        Wire::OpenAi => "https://api.openai.com/v1".into(),
        Wire::Anthropic => "https://api.anthropic.com".into(),
    });
    let model = spec.model.clone().ok_or_else(|| {
        ProviderError::Config(format!("[providers.{name}] has no model: add model = \"...\" or pass --model"))
    })?;
    let (api_key, key_hint) = match (&spec.api_key_env, &spec.api_key_file) {
        (Some(var), _) => (process_env(var).map(ApiKey), format!("the {var} environment variable")),
        (None, Some(file)) => (Some(read_key_file(file)?), format!("{}", file.display())),
        (None, None) => (None, format!("api_key_env or api_key_file of [providers.{name}]")),
    };
    Ok(RemoteConfig {
        name: name.into(),
        wire,
        base_url,
        model,
        api_key,
        key_hint,
        max_attempts: spec.max_attempts.unwrap_or(default_attempts),
        idle_timeout: Duration::ZERO,
    })
}

/// Reads an API key file, refusing one that others can read (as for the
/// identity key).
fn read_key_file(path: &Path) -> Result<ApiKey, ProviderError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |why: String| ProviderError::Config(format!("API key file {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err(format!(
            "readable by others (mode {:o}); run chmod 600 on it",
            meta.permissions().mode() & 0o777
        )));
    }
    if meta.len() > 16 << 10 {
        return Err(err("larger than 16 KiB; it should hold only the key".into()));
    }
    let key = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(ApiKey(key.to_owned()))
}

/// Finds and loads the local model: `--model-path`, else `model.local_path`,
/// else the embedded default in the home's models dir.
fn local(resolved: &Resolved, home: &Home, choice: &Choice) -> Result<LocalProvider, ProviderError> {
    let configured = resolved.config.model.local_path.as_str();
    let (path, explicit) = match (&choice.model_path, configured) {
        (Some(p), _) => (p.clone(), true),
        (None, "") => (home.models_dir().join(DEFAULT_MODEL_FILE), false),
        (None, p) => (PathBuf::from(p), true),
    };
    if !path.exists() {
        return Err(ProviderError::Config(if explicit {
            format!("model file {} does not exist", path.display())
        } else {
            format!(
                "no model available: {} does not exist. Ways to get one:\n  \
                 - the embedded default, offline after one download: alp model pull \
                 (puts SmolLM2-135M-Instruct in {})\n  \
                 - any GGUF file: --model-path FILE, or model.local_path in config.toml\n  \
                 - an Ollama server: set OLLAMA_HOST (e.g. 127.0.0.1:11434), optionally OLLAMA_MODEL\n  \
                 - any OpenAI-compatible endpoint: set OPENAI_BASE_URL and OPENAI_API_KEY, or add a \
                 [providers.NAME] table with kind = \"openai\"\n  \
                 - Anthropic: set ANTHROPIC_API_KEY",
                path.display(),
                home.models_dir().display()
            )
        }));
    }
    let provider = LocalProvider::load(&path).map_err(|e| ProviderError::Config(e.to_string()))?;
    let model = provider.inner();
    tracing::info!(
        path = %path.display(),
        name = %model.name,
        load_ms = format_args!("{:.1}", model.load_time.as_secs_f64() * 1e3),
        "model loaded"
    );
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn environment_conventions() {
        let e = env_of(&[("OPENAI_API_KEY", "sk-1"), ("OLLAMA_HOST", "10.0.0.5")]);
        let p = env_providers(&e);
        assert_eq!(p.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["openai", "ollama"]);
        assert_eq!(p[0].base_url, "https://api.openai.com/v1");
        assert_eq!(p[1].base_url, "http://10.0.0.5:11434/v1");
        let e = env_of(&[("OLLAMA_HOST", "https://gpu.example.invalid:8080/")]);
        assert_eq!(env_providers(&e)[0].base_url, "https://gpu.example.invalid:8080/v1");
        let e = env_of(&[("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")]);
        let p = env_providers(&e);
        assert_eq!((p[0].name.as_str(), p[0].wire, p[0].api_key.is_none()), ("anthropic", Wire::Anthropic, true));
    }
}
