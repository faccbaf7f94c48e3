//! A client of the Hugging Face Hub's HTTP protocol, as `huggingface_hub` speaks it:
//! `GET {endpoint}/api/models/{repo}/revision/{rev}` lists a revision's files and commit;
//! `HEAD {endpoint}/{repo}/resolve/{rev}/{file}` (redirects not followed) gives the commit
//! (`X-Repo-Commit`), the content's digest (`X-Linked-Etag`, else `ETag`: a sha256 for LFS
//! files, the git blob SHA-1 for small ones), its size (`X-Linked-Size`, else
//! `Content-Length`) and where the bytes are (`Location` for LFS files). `HF_ENDPOINT` moves
//! the Hub, `HF_TOKEN` authenticates. Downloads resume and are verified (`download`); files
//! already in the Hugging Face cache are reused read-only (`cache`).

pub mod cache;
pub mod download;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::store::ModelName;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The JSON of the revision endpoint is small; anything past this is not the Hub.
const MAX_INFO_BYTES: u64 = 64 << 20;

/// A model name that addresses the Hub: `hf.co/ORG/REPO[:TAG]` or `huggingface.co/…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubRef {
    /// `ORG/REPO`.
    pub repo: String,
    /// The quant type that picks a GGUF file; `None` for the default (`latest`).
    pub tag: Option<String>,
}

impl HubRef {
    /// `None` when the name is not a Hub name (or not a valid name at all).
    pub fn parse(name: &str) -> Option<HubRef> {
        let n = ModelName::parse(name).ok()?;
        let host = n.host.to_ascii_lowercase();
        if host != "hf.co" && host != "huggingface.co" {
            return None;
        }
        Some(HubRef {
            repo: format!("{}/{}", n.namespace, n.model),
            tag: (n.tag != super::store::name::DEFAULT_TAG).then_some(n.tag),
        })
    }
}

/// Where the Hub is, who we are, and where the Hugging Face cache lives.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Without a trailing `/`.
    pub endpoint: String,
    pub token: Option<String>,
    /// The `hub` folder of the Hugging Face cache (read only), if any.
    pub cache: Option<PathBuf>,
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|s| !s.trim().is_empty())
}

impl HubConfig {
    /// `HF_ENDPOINT` (default the public Hub); `HF_TOKEN`, else the token file
    /// `huggingface-cli login` writes (`$HF_HOME/token`); the cache `HF_HUB_CACHE`, else
    /// `$HF_HOME/hub` (`HF_HOME` defaults to `~/.cache/huggingface`).
    pub fn from_env() -> HubConfig {
        let hf_home = env_nonempty("HF_HOME")
            .map(|s| super::store::expand_tilde(&s))
            .unwrap_or_else(|| super::store::expand_tilde("~/.cache/huggingface"));
        let token = env_nonempty("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(hf_home.join("token"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        });
        HubConfig {
            endpoint: env_nonempty("HF_ENDPOINT")
                .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
                .trim_end_matches('/')
                .to_string(),
            token,
            cache: Some(
                env_nonempty("HF_HUB_CACHE")
                    .map(|s| super::store::expand_tilde(&s))
                    .unwrap_or_else(|| hf_home.join("hub")),
            ),
        }
    }
}

/// A revision's commit and file list.
#[derive(Clone, Debug)]
pub struct RepoInfo {
    pub sha: String,
    pub files: Vec<String>,
}

#[derive(Deserialize)]
struct RevisionJson {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
}

/// What a `HEAD` of a file's resolve URL says about it.
#[derive(Clone, Debug)]
pub struct FileMeta {
    pub file: String,
    pub commit: Option<String>,
    /// Lowercase hex: 64 digits (sha256, LFS) or 40 (git blob SHA-1).
    pub etag: String,
    pub size: u64,
    /// Absolute URL of the bytes (the redirect target for LFS files).
    pub location: String,
}

impl FileMeta {
    pub fn is_lfs(&self) -> bool {
        self.etag.len() == 64
    }
}

/// `W/"abc"` → `abc`, as `huggingface_hub` normalises ETags; only hex digests are accepted
/// (the digest names a file in `partial/` and is compared with what we compute).
pub fn normalize_etag(raw: &str) -> Option<String> {
    let e = raw.trim();
    let e = e.strip_prefix("W/").unwrap_or(e).trim_matches('"');
    let e = e.to_ascii_lowercase();
    (matches!(e.len(), 40 | 64) && e.bytes().all(|b| b.is_ascii_hexdigit())).then_some(e)
}

/// Percent-encodes a repository path for a URL, keeping `/` between its parts.
fn encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct Hub {
    pub config: HubConfig,
    /// Redirects not followed: the Hub's own response carries the `X-Linked-*` headers.
    head_agent: ureq::Agent,
    agent: ureq::Agent,
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        let build = |redirects: u32| -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(redirects)
                .max_redirects_will_error(false)
                .timeout_connect(Some(Duration::from_secs(30)))
                // A stalled transfer fails (and resumes) instead of hanging forever; a per-read
                // limit, since a whole multi-gigabyte body may rightly take hours.
                .timeout_per_read(Some(Duration::from_secs(60)))
                .user_agent(format!("bitnet-gguf/{}", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        };
        Hub {
            config,
            head_agent: build(0),
            agent: build(10),
        }
    }

    /// The `Authorization` header for URLs of the endpoint itself; redirect targets elsewhere
    /// (a CDN) never see the token.
    fn auth_for(&self, url: &str) -> Option<String> {
        let same_origin =
            url == self.config.endpoint || url.starts_with(&format!("{}/", self.config.endpoint));
        self.config
            .token
            .as_ref()
            .filter(|_| same_origin)
            .map(|t| format!("Bearer {t}"))
    }

    /// A clear error for a refused request: authentication, gated repositories, absence.
    pub fn status_error(&self, status: u16, repo: &str, what: &str) -> anyhow::Error {
        let page = format!("{}/{repo}", self.config.endpoint);
        match (status, self.config.token.is_some()) {
            (401, false) => anyhow::anyhow!(
                "{what}: the Hub answered 401 Unauthorized: {repo} is private or gated (or does \
                 not exist); set HF_TOKEN to an access token of an account that may read it"
            ),
            (401, true) => anyhow::anyhow!(
                "{what}: the Hub answered 401 Unauthorized with HF_TOKEN: the token is invalid, or \
                 its account cannot read {repo}"
            ),
            (403, _) => anyhow::anyhow!(
                "{what}: the Hub answered 403 Forbidden: {repo} is gated; accept its conditions at \
                 {page} with the account of HF_TOKEN"
            ),
            (404, _) => anyhow::anyhow!("{what}: not found on the Hub (404) at {page}"),
            (s, _) => anyhow::anyhow!("{what}: the Hub answered HTTP {s}"),
        }
    }

    fn get(
        &self,
        agent: &ureq::Agent,
        url: &str,
        head: bool,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let auth = self.auth_for(url);
        let r = if head {
            let mut req = agent.head(url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.call()
        } else {
            let mut req = agent.get(url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.call()
        };
        r.map_err(|e| anyhow::anyhow!("{url}: {e}"))
    }

    /// The commit and file list of `repo` at `rev`.
    pub fn repo_info(&self, repo: &str, rev: &str) -> anyhow::Result<RepoInfo> {
        let url = format!(
            "{}/api/models/{}/revision/{}",
            self.config.endpoint,
            encode_path(repo),
            encode_path(rev)
        );
        let r = self.get(&self.agent, &url, false)?;
        let status = r.status().as_u16();
        if status != 200 {
            return Err(self.status_error(status, repo, &format!("pull {repo}")));
        }
        let mut bytes = Vec::new();
        r.into_body()
            .into_reader()
            .take(MAX_INFO_BYTES)
            .read_to_end(&mut bytes)?;
        let info: RevisionJson = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{url}: not the Hub's revision JSON: {e}"))?;
        Ok(RepoInfo {
            sha: info.sha,
            files: info.siblings.into_iter().map(|s| s.rfilename).collect(),
        })
    }

    /// What the Hub says about one file of `repo` at `rev` (a commit, for a consistent pull).
    pub fn file_meta(&self, repo: &str, rev: &str, file: &str) -> anyhow::Result<FileMeta> {
        let url = format!(
            "{}/{}/resolve/{}/{}",
            self.config.endpoint,
            encode_path(repo),
            encode_path(rev),
            encode_path(file)
        );
        let r = self.get(&self.head_agent, &url, true)?;
        let status = r.status().as_u16();
        if !(200..400).contains(&status) {
            return Err(self.status_error(status, repo, &format!("{repo}/{file}")));
        }
        let h = r.headers();
        let header = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        let raw_etag = header("x-linked-etag")
            .or_else(|| header("etag"))
            .ok_or_else(|| anyhow::anyhow!("{repo}/{file}: the Hub sent no ETag"))?;
        let etag = normalize_etag(&raw_etag).ok_or_else(|| {
            anyhow::anyhow!("{repo}/{file}: ETag {raw_etag:?} is not a sha256 or git SHA-1 digest")
        })?;
        let size = header("x-linked-size")
            .or_else(|| header("content-length"))
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("{repo}/{file}: the Hub sent no size"))?;
        let location = match header("location") {
            Some(l) if (300..400).contains(&status) => {
                if l.starts_with('/') {
                    format!("{}{l}", self.config.endpoint)
                } else {
                    l
                }
            }
            _ => url,
        };
        Ok(FileMeta {
            file: file.to_string(),
            commit: header("x-repo-commit"),
            etag,
            size,
            location,
        })
    }

    /// `GET url` from byte `from` on (a `Range` request when `from > 0`), redirects followed.
    pub fn get_from(
        &self,
        url: &str,
        from: u64,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let mut req = self.agent.get(url);
        if let Some(a) = self.auth_for(url) {
            req = req.header("Authorization", a);
        }
        if from > 0 {
            req = req.header("Range", format!("bytes={from}-"));
        }
        req.call().map_err(|e| anyhow::anyhow!("{url}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_names() {
        assert_eq!(
            HubRef::parse("hf.co/microsoft/bitnet-b1.58-2B-4T-gguf:I2_S"),
            Some(HubRef {
                repo: "microsoft/bitnet-b1.58-2B-4T-gguf".into(),
                tag: Some("I2_S".into())
            })
        );
        let r = HubRef::parse("huggingface.co/org/repo").unwrap();
        assert_eq!((r.repo.as_str(), r.tag), ("org/repo", None));
        assert_eq!(HubRef::parse("org/repo"), None);
        assert_eq!(HubRef::parse("hf.co/../x"), None);
    }

    #[test]
    fn etags() {
        let sha = "a".repeat(64);
        assert_eq!(normalize_etag(&format!("\"{sha}\"")), Some(sha.clone()));
        assert_eq!(
            normalize_etag(&format!("W/\"{}\"", "B".repeat(40))),
            Some("b".repeat(40))
        );
        assert_eq!(normalize_etag("\"../../etc\""), None);
        assert_eq!(encode_path("a b/c+d.gguf"), "a%20b/c%2Bd.gguf");
    }
}
