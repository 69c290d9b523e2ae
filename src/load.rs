//! The one loading step `check`, start-up and reload share. It reads
//! gateway.yaml, validates it (`config::parse_partial`, which reads
//! nothing), then reads each file the config names, once: the TLS
//! certificate and key (matched by `tls`) and the access-token key files
//! (parsed by `auth::jwt`); and it checks that the store's folder
//! exists and is writable, or can be created. A problem with one of those
//! files is a `ConfigError` at the scalar naming it, so every error prints
//! as `PATH:LINE:COLUMN: yaml.path: message`, the files' own included. The
//! files a config with errors names are checked too: one `check` lists
//! every problem.
//!
//! The HS256 secrets generated beside the store (`identity::keys`) are
//! state the gateway keeps, not config files: `Identity::build` reads or
//! makes them.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::auth::jwt::SigningKeys;
use crate::config::{
    self, Algorithm, Config, ConfigError, ConfigErrors, FileRef, Partial, Pos, Tls, TokenKeys,
};
use crate::http::tls::{self, CertError};

/// Key files are small: a device or pipe named by mistake (`/dev/zero`)
/// must give an error, not fill memory or hang.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The same guard for certificate chains, which are a few KiB each.
const MAX_CERT_FILE: u64 = 1024 * 1024;

/// A validated config and what the files it names hold.
pub struct Loaded {
    pub config: Config,
    /// The HTTPS certificate chain and its key, matched; `None` without `tls`.
    pub cert: Option<Arc<CertifiedKey>>,
    /// The access-token key pair (`private_key`) and the public
    /// `previous_keys`; `None` without `auth`, and with HS256 (whose secret
    /// the config gives or the store keeps).
    pub access_keys: Option<Arc<SigningKeys>>,
}

/// The config file when `--config` is not given: `$GATEWAY_CONFIG`, else
/// `./gateway.yaml`.
pub fn default_path() -> PathBuf {
    std::env::var_os("GATEWAY_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("gateway.yaml"))
}

/// Reads and validates `file` and every file it names; every problem is
/// returned, positioned. Blocking.
pub fn load(file: &Path) -> Result<Loaded, ConfigErrors> {
    let text = read_config(file)?;
    let env = |name: &str| std::env::var(name).ok();
    let Partial { config, mut errors } = config::parse_partial(&text, file, &env);
    let Some(config) = config else {
        return Err(ConfigErrors::new(file, errors));
    };
    let mut files = Files {
        flagged: errors.iter().map(|e| e.path.clone()).collect(),
        errors: Vec::new(),
    };
    let cert = config.tls.as_ref().and_then(|t| files.certificate(t));
    let auth = config.auth.as_ref();
    let access_keys = auth.and_then(|a| files.access_keys(&a.access_token));
    if let Some(crate::config::StoreLocation::File(store)) = auth.map(|a| &a.store) {
        files.store_folder(store);
    }
    errors.extend(files.errors);
    if !errors.is_empty() {
        return Err(ConfigErrors::new(file, errors));
    }
    Ok(Loaded {
        config,
        cert,
        access_keys: access_keys.map(Arc::new),
    })
}

fn read_config(file: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(file).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "; name the config with --config PATH or $GATEWAY_CONFIG (default ./gateway.yaml)"
            }
            _ => "",
        };
        let message = format!("cannot read the file: {e}{hint}");
        ConfigErrors::new(file, vec![ConfigError::new(Pos::new(1, 1), "", message)])
    })
}

/// Reads the files a config names, collecting their errors.
struct Files {
    /// YAML paths that have an error already: the file such a scalar names
    /// (an empty path, say) is not read, so one mistake gives one error.
    flagged: HashSet<String>,
    errors: Vec<ConfigError>,
}

impl Files {
    /// The file's bytes, or `None` with its error recorded (`what` names
    /// the file in the message: `certificate`, `key`, ...).
    fn read(&mut self, f: &FileRef, what: &str, limit: u64) -> Option<Vec<u8>> {
        if self.flagged.contains(&f.yaml_path) {
            return None;
        }
        read_small(&f.path, limit)
            .map_err(|why| {
                let message = format!("cannot read {what} {}: {why}", f.path.display());
                self.errors.push(f.error(message));
            })
            .ok()
    }

    /// The chain and key of `tls`, matched. Chain errors point at
    /// `tls.cert`, key errors at `tls.key`, a mismatch at `tls.cert`.
    fn certificate(&mut self, t: &Tls) -> Option<Arc<CertifiedKey>> {
        let chain = self.read(&t.cert, "certificate", MAX_CERT_FILE);
        let key = self.read(&t.key, "private key", MAX_KEY_FILE);
        let chain = chain.and_then(|pem| self.cert_ok(t, tls::chain(&pem)));
        let key = key.and_then(|pem| self.cert_ok(t, tls::private_key(&pem)));
        let certified = tls::certified_key(chain?, key?);
        self.cert_ok(t, certified)
    }

    /// `r`'s value, or `None` with its error recorded at the file it concerns.
    fn cert_ok<T>(&mut self, t: &Tls, r: Result<T, CertError>) -> Option<T> {
        let (cert, key) = (t.cert.path.display(), t.key.path.display());
        let e = match r {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        self.errors.push(match e {
            CertError::NoCertificate => t.cert.error(format!("{cert} holds no PEM certificate")),
            CertError::Chain(e) => t.cert.error(format!("cannot read certificate {cert}: {e}")),
            CertError::Key(e) => t.key.error(format!("cannot read private key {key}: {e}")),
            CertError::Mismatch(e) => t.cert.error(format!(
                "certificate {cert} and key {key} do not match: {e}"
            )),
        });
        None
    }

    /// The asymmetric access-token keys, each bad one reported at the
    /// `private_key` or `previous_keys[i]` naming it. HS256 reads no file.
    fn access_keys(&mut self, t: &TokenKeys) -> Option<SigningKeys> {
        let private = t
            .private_key
            .as_ref()
            .filter(|_| t.algorithm != Algorithm::HS256)?;
        let private_pem = self.read(private, "key", MAX_KEY_FILE);
        // The files that could be read are parsed (and reported) even when
        // another could not.
        let (named, pems): (Vec<&FileRef>, Vec<Vec<u8>>) = t
            .previous_keys
            .iter()
            .filter_map(|f| Some((f, self.read(f, "key", MAX_KEY_FILE)?)))
            .unzip();
        let all_read = named.len() == t.previous_keys.len();
        match SigningKeys::asymmetric(t.algorithm, &private_pem?, &pems) {
            Ok(keys) => all_read.then_some(keys),
            Err(bad) => {
                for b in bad {
                    let f = b.previous.map_or(private, |i| named[i]);
                    let message = format!("key {}: {}", f.path.display(), b.why);
                    self.errors.push(f.error(message));
                }
                None
            }
        }
    }

    /// The store's folder must exist and be writable, or be creatable.
    fn store_folder(&mut self, store: &FileRef) {
        if self.flagged.contains(&store.yaml_path) {
            return;
        }
        if let Err(message) = store_folder_writable(&store.path) {
            self.errors.push(store.error(message));
        }
    }
}

/// A small regular file's bytes (at most `limit`).
fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let too_large = || format!("larger than {} KiB", limit / 1024);
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // Bounded again while reading: the file may grow after `metadata`.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    match bytes.len() as u64 > limit {
        true => Err(too_large()),
        false => Ok(bytes),
    }
}

fn store_folder_writable(store: &Path) -> Result<(), String> {
    let folder = store.parent().unwrap_or(Path::new("."));
    let mut existing = folder;
    while !existing.exists() {
        existing = existing
            .parent()
            .ok_or_else(|| format!("no existing folder above {}", folder.display()))?;
    }
    let meta = std::fs::metadata(existing)
        .map_err(|e| format!("cannot read {}: {e}", existing.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a folder", existing.display()));
    }
    if meta.permissions().readonly() {
        return Err(format!("{} is not writable", existing.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(dir: &Path, text: &str) -> Result<Loaded, ConfigErrors> {
        let file = dir.join("gateway.yaml");
        std::fs::write(&file, text).unwrap();
        load(&file)
    }

    /// Each error as `LINE:COL: path: message`.
    fn errors(dir: &Path, text: &str) -> Vec<String> {
        match load_str(dir, text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e
                .errors
                .iter()
                .map(|e| format!("{}:{}: {}: {}", e.pos.line, e.pos.col, e.path, e.message))
                .collect(),
        }
    }

    fn assert_errors(errs: &[String], wanted: &[(&str, &str)]) {
        for (at, contains) in wanted {
            assert!(
                errs.iter()
                    .any(|e| e.starts_with(at) && e.contains(contains)),
                "wanted an error at {at} containing {contains:?}, got:\n{}",
                errs.join("\n")
            );
        }
        assert_eq!(errs.len(), wanted.len(), "{}", errs.join("\n"));
    }

    /// An Ed25519 key pair as PEM: (PKCS#8 private, SubjectPublicKeyInfo public).
    fn ed25519_pems() -> (String, String) {
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let pem = |tag: &str, der: &[u8]| pem::encode(&pem::Pem::new(tag, der.to_vec()));
        (pem("PRIVATE KEY", der.as_ref()), pem("PUBLIC KEY", &spki))
    }

    const ROUTE: &str = "routes:\n  - { name: a, path: /a, echo: true }\n";

    #[test]
    fn the_shipped_gateway_yaml_is_valid() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.yaml");
        let c = load(&file).unwrap_or_else(|e| panic!("{e}")).config;
        assert_eq!(c.listen, Some("127.0.0.1:3000".parse().unwrap()));
        assert!(c.auth.is_some());
        assert!(c
            .routes
            .iter()
            .any(|r| matches!(r.target, config::Target::Echo)
                && r.auth == config::AuthMode::Required));
    }

    #[test]
    fn the_container_config_is_valid_and_listens_on_all_interfaces() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gateway.docker.yaml");
        let c = load(&file).unwrap_or_else(|e| panic!("{e}")).config;
        assert_eq!(c.listen, Some("0.0.0.0:3000".parse().unwrap()));
        assert_eq!(
            c.admin.map(|a| a.listen),
            Some("0.0.0.0:9901".parse().unwrap())
        );
        assert_eq!(
            c.auth.and_then(|a| a.store.file().map(|f| f.path.clone())),
            Some(PathBuf::from("/data/users.redb"))
        );
    }

    #[test]
    fn a_missing_config_file_says_how_to_name_another() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(&dir.path().join("absent.yaml"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("absent.yaml:1:1: cannot read the file: "), "{e}");
        assert!(
            e.contains("--config") && e.contains("GATEWAY_CONFIG"),
            "{e}"
        );
    }

    #[test]
    fn a_device_or_huge_file_is_refused_as_a_key_not_read() {
        // Found while fuzzing: `private_key: /dev/zero` filled memory.
        let err = read_small(Path::new("/dev/zero"), MAX_KEY_FILE).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; 100 * 1024]).unwrap();
        let err = read_small(&big, MAX_KEY_FILE).unwrap_err();
        assert!(err.contains("larger than 64 KiB"), "{err}");
        let text = format!(
            "listen: 127.0.0.1:1\nauth:\n  access_token:\n    algorithm: EdDSA\n    private_key: /dev/zero\n{ROUTE}"
        );
        assert_errors(
            &errors(dir.path(), &text),
            &[(
                "5:18: auth.access_token.private_key: ",
                "cannot read key /dev/zero: not a regular file",
            )],
        );
    }

    #[test]
    fn file_errors_point_at_the_scalar_naming_the_file_next_to_the_other_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("not-a-folder"), "").unwrap();
        let text = "listen: nowhere\ntls:\n  listen: 127.0.0.1:1\n  cert: absent.crt\n  key: absent.key\nauth:\n  store: not-a-folder/u.redb\n  access_token:\n    algorithm: ES256\n    private_key: absent.pem\n    previous_keys: [old.pem]\nroutes:\n  - { name: a, path: /a, echo: true }\n";
        assert_errors(
            &errors(dir.path(), text),
            &[
                ("1:9: listen: ", "not an address"),
                ("4:9: tls.cert: ", "cannot read certificate"),
                ("5:8: tls.key: ", "cannot read private key"),
                ("7:10: auth.store: ", "is not a folder"),
                (
                    "10:18: auth.access_token.private_key: ",
                    "absent.pem: No such file",
                ),
                (
                    "11:21: auth.access_token.previous_keys[0]: ",
                    "old.pem: No such file",
                ),
            ],
        );
    }

    #[test]
    fn the_certificate_and_key_are_each_reported_at_their_own_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not a key\n").unwrap();
        let text = |cert: &str, key: &str| {
            format!("tls:\n  listen: 127.0.0.1:1\n  cert: {cert}\n  key: {key}\n{ROUTE}")
                .replace("echo: true", "echo: true, auth: none")
        };
        assert_errors(
            &errors(dir.path(), &text("absent.crt", "junk.pem")),
            &[
                ("3:9: tls.cert: ", "cannot read certificate"),
                ("4:8: tls.key: ", "cannot read private key"),
            ],
        );
        assert_errors(
            &errors(dir.path(), &text("junk.pem", "junk.pem")),
            &[
                ("3:9: tls.cert: ", "junk.pem holds no PEM certificate"),
                ("4:8: tls.key: ", "cannot read private key"),
            ],
        );
    }

    #[test]
    fn every_bad_key_file_is_reported_at_its_own_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = ed25519_pems();
        std::fs::write(dir.path().join("good.pem"), &private).unwrap();
        std::fs::write(dir.path().join("good.pub"), &public).unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not a key\n").unwrap();
        let text = |private: &str, previous: &str| {
            format!("listen: 127.0.0.1:1\nauth:\n  access_token:\n    algorithm: EdDSA\n    private_key: {private}\n    previous_keys: [{previous}]\n{ROUTE}")
        };
        let loaded = load_str(dir.path(), &text("good.pem", "good.pub, good.pub"))
            .unwrap_or_else(|e| panic!("{e}"));
        let keys = loaded.access_keys.expect("the key files, parsed");
        assert_eq!(keys.verifying.len(), 3);
        assert_errors(
            &errors(dir.path(), &text("junk.pem", "good.pub, junk.pem")),
            &[
                (
                    "5:18: auth.access_token.private_key: ",
                    "junk.pem: not a PEM file",
                ),
                (
                    "6:31: auth.access_token.previous_keys[1]: ",
                    "junk.pem: not a PEM file",
                ),
            ],
        );
        // One file that cannot be read does not hide what is wrong with the others.
        assert_errors(
            &errors(dir.path(), &text("junk.pem", "absent.pub, junk.pem")),
            &[
                (
                    "5:18: auth.access_token.private_key: ",
                    "junk.pem: not a PEM file",
                ),
                (
                    "6:21: auth.access_token.previous_keys[0]: ",
                    "absent.pub: No such file",
                ),
                (
                    "6:33: auth.access_token.previous_keys[1]: ",
                    "junk.pem: not a PEM file",
                ),
            ],
        );
        // A private key where a public one belongs.
        assert_errors(
            &errors(dir.path(), &text("good.pem", "good.pem")),
            &[(
                "6:21: auth.access_token.previous_keys[0]: ",
                "public key PEM was expected",
            )],
        );
    }

    // Issue: an unset `${VAR}` hid every other error in the file.
    #[test]
    fn a_file_named_by_an_unset_variable_is_not_read_and_the_rest_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("listen: nowhere\ntls:\n  listen: 127.0.0.1:1\n  cert: ${{GATEWAY_TEST_UNSET_CERT}}\n  key: absent.key\nauth:\n  store: ${{GATEWAY_TEST_UNSET_DIR}}/u.redb\n{ROUTE}");
        assert_errors(
            &errors(dir.path(), &text),
            &[
                ("1:9: listen: ", "not an address"),
                ("4:9: tls.cert: ", "GATEWAY_TEST_UNSET_CERT is not set"),
                ("5:8: tls.key: ", "cannot read private key"),
                ("7:10: auth.store: ", "GATEWAY_TEST_UNSET_DIR is not set"),
            ],
        );
        // Nothing was made from the text left in the scalar.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_path_with_an_error_already_is_not_read_too() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("listen: 127.0.0.1:1\nauth:\n  store: \"\"\n  access_token:\n    algorithm: EdDSA\n    private_key: \"\"\n{ROUTE}");
        assert_errors(
            &errors(dir.path(), &text),
            &[
                ("3:10: auth.store: ", "the path is empty"),
                ("6:18: auth.access_token.private_key: ", "the path is empty"),
            ],
        );
        // HS256 reads no key file, so its misplaced `private_key` is one error.
        let text = format!(
            "listen: 127.0.0.1:1\nauth:\n  access_token:\n    private_key: absent.pem\n{ROUTE}"
        );
        assert_errors(
            &errors(dir.path(), &text),
            &[(
                "4:18: auth.access_token.private_key: ",
                "HS256 uses `secret`",
            )],
        );
    }
}
