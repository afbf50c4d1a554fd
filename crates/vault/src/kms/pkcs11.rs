//! KEKs in an HSM over PKCS#11 (`cryptoki`). Keys are generated inside the token as sensitive,
//! non-extractable AES-256 keys; wrapping is `CKM_AES_GCM` performed by the token, so the KEK
//! never exists in this process's memory.

use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rand::RngCore;
use zeroize::Zeroizing;

use super::{Kms, KmsError};

const IV_LEN: usize = 12;

/// Where the token is and how to log in.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module, such as `/usr/lib/softhsm/libsofthsm2.so`.
    pub library: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The user PIN. Never logged.
    pub pin: Zeroizing<String>,
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("library", &self.library)
            .field("token_label", &self.token_label)
            .field("pin", &"****")
            .finish()
    }
}

struct Connection {
    // Field order matters: the session closes before the library is finalized.
    session: Session,
    _ctx: Pkcs11,
    /// Key handles by label: finding objects costs a token search per call, which grows with
    /// the number of objects in the token. Handles stay valid for the application's sessions;
    /// the map is dropped with the connection and entries are forgotten when an operation fails.
    handles: std::collections::HashMap<String, ObjectHandle>,
}

/// A KMS in a PKCS#11 token. Connects lazily and reconnects after failures, so an HSM that was
/// away and comes back is used again without a restart; while it is away, every operation fails.
pub struct Pkcs11Kms {
    config: Pkcs11Config,
    conn: Mutex<Option<Connection>>,
}

fn unavailable(what: impl std::fmt::Display) -> KmsError {
    KmsError::Unavailable(format!("PKCS#11: {what}"))
}

/// Whether an error means the token (not the data) is the problem.
fn is_connection_error(e: &CkError) -> bool {
    match e {
        CkError::Pkcs11(rv, _) => matches!(
            rv,
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceError
                | RvError::DeviceRemoved
                | RvError::DeviceMemory
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::CryptokiNotInitialized
                | RvError::UserNotLoggedIn
                | RvError::GeneralError
        ),
        _ => true,
    }
}

impl Pkcs11Kms {
    /// A KMS for the token in `config`; nothing is opened until first use.
    pub fn new(config: Pkcs11Config) -> Self {
        Self { config, conn: Mutex::new(None) }
    }

    fn connect(&self) -> Result<Connection, KmsError> {
        let ctx = Pkcs11::new(&self.config.library).map_err(|e| unavailable(format!("cannot load the module: {e}")))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(unavailable(format!("cannot initialize: {e}"))),
        }
        let slots = ctx.get_slots_with_token().map_err(unavailable)?;
        let slot = slots
            .into_iter()
            .find(|s| ctx.get_token_info(*s).map(|i| i.label().trim() == self.config.token_label).unwrap_or(false))
            .ok_or_else(|| unavailable(format!("no token labelled `{}`", self.config.token_label)))?;
        let session = ctx.open_rw_session(slot).map_err(unavailable)?;
        let pin = AuthPin::from(self.config.pin.as_str().to_owned());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => return Err(unavailable("the PIN is incorrect")),
            Err(e) => return Err(unavailable(format!("login failed: {e}"))),
        }
        Ok(Connection { session, _ctx: ctx, handles: std::collections::HashMap::new() })
    }

    /// Runs `f` with a logged-in session, connecting first if needed and dropping the connection
    /// when the token fails, so the next call reconnects.
    fn with_session<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, Fail>) -> Result<T, KmsError> {
        let mut guard = self.conn.lock().map_err(|_| unavailable("lock poisoned"))?;
        if guard.is_none() {
            *guard = Some(self.connect()?);
        }
        let Some(conn) = guard.as_mut() else { return Err(unavailable("not connected")) };
        match f(conn) {
            Ok(v) => Ok(v),
            Err(Fail::Token(e)) => {
                *guard = None;
                Err(unavailable(e))
            }
            Err(Fail::Kms(k)) => Err(k),
        }
    }

    fn find_key(session: &Session, name: &str) -> Result<Option<ObjectHandle>, Fail> {
        let found = session
            .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(name.as_bytes().to_vec())])
            .map_err(|e| fail(e, unavailable("cannot search the token")))?;
        Ok(found.into_iter().next())
    }

    fn key(conn: &mut Connection, name: &str) -> Result<ObjectHandle, Fail> {
        if let Some(h) = conn.handles.get(name) {
            return Ok(*h);
        }
        let h = Self::find_key(&conn.session, name)?
            .ok_or_else(|| Fail::Kms(KmsError::KeyNotFound(format!("pkcs11:{name}"))))?;
        conn.handles.insert(name.to_owned(), h);
        Ok(h)
    }
}

/// A failed token call: the token itself failing (reconnect next time), or a plain answer.
enum Fail {
    Token(CkError),
    Kms(KmsError),
}

/// Classifies a token error: connection trouble, or `otherwise`.
fn fail(e: CkError, otherwise: KmsError) -> Fail {
    if is_connection_error(&e) { Fail::Token(e) } else { Fail::Kms(otherwise) }
}

impl Kms for Pkcs11Kms {
    fn wrap(&self, name: &str, dek: &[u8], aad: &[u8]) -> Result<Vec<u8>, KmsError> {
        self.with_session(|c| {
            let key = Self::key(c, name)?;
            let s = &c.session;
            let mut iv = [0u8; IV_LEN];
            rand::rng().fill_bytes(&mut iv);
            let mut iv_param = iv;
            let params = GcmParams::new(&mut iv_param, aad, 128.into()).map_err(|_| Fail::Kms(KmsError::Integrity))?;
            let ct = match s.encrypt(&Mechanism::AesGcm(params), key, dek) {
                Ok(ct) => ct,
                Err(e) => {
                    c.handles.remove(name);
                    return Err(fail(e, unavailable("the token refused to encrypt")));
                }
            };
            let mut out = iv.to_vec();
            out.extend(ct);
            Ok(out)
        })
    }

    fn unwrap(&self, name: &str, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        if wrapped.len() <= IV_LEN {
            return Err(KmsError::Integrity);
        }
        self.with_session(|c| {
            let key = Self::key(c, name)?;
            let s = &c.session;
            let mut iv = [0u8; IV_LEN];
            iv.copy_from_slice(&wrapped[..IV_LEN]);
            let params = GcmParams::new(&mut iv, aad, 128.into()).map_err(|_| Fail::Kms(KmsError::Integrity))?;
            let result = s.decrypt(&Mechanism::AesGcm(params), key, &wrapped[IV_LEN..]);
            if result.is_err() {
                c.handles.remove(name);
            }
            let s = &c.session;
            result.map(Zeroizing::new).map_err(|e| {
                // SoftHSM2 (and some HSMs) report a failed GCM tag check as CKR_GENERAL_ERROR;
                // if the session still answers, the data was at fault, not the token.
                let token_alive = s.get_session_info().is_ok();
                if token_alive && matches!(e, CkError::Pkcs11(RvError::GeneralError, _)) {
                    Fail::Kms(KmsError::Integrity)
                } else {
                    fail(e, KmsError::Integrity)
                }
            })
        })
    }

    fn create_key(&self, name: &str) -> Result<(), KmsError> {
        self.with_session(|c| {
            let s = &c.session;
            if Self::find_key(s, name)?.is_some() {
                return Err(Fail::Kms(KmsError::KeyExists(format!("pkcs11:{name}"))));
            }
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(name.as_bytes().to_vec()),
            ];
            s.generate_key(&Mechanism::AesKeyGen, &template)
                .map(|_| ())
                .map_err(|e| fail(e, unavailable("the token refused to generate a key")))
        })
    }

    fn destroy_key(&self, name: &str) -> Result<(), KmsError> {
        self.with_session(|c| {
            let key = Self::key(c, name)?;
            c.handles.remove(name);
            c.session.destroy_object(key).map_err(|e| fail(e, unavailable("the token refused to destroy the key")))
        })
    }

    fn has_key(&self, name: &str) -> Result<bool, KmsError> {
        self.with_session(|c| Ok(Self::find_key(&c.session, name)?.is_some()))
    }
}
