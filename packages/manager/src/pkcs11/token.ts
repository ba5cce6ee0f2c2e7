// Reaching a token through a PKCS#11 module: the binding (pkcs11js, an optional dependency loaded
// only when a pkcs11: key is used), the module, the slot whose token the URI names, a logged-in
// session. Every failure becomes a ManagerError with a PKCS11_* code; no message carries a PIN.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Pkcs11Js from 'pkcs11js';
import { ManagerError } from '../errors.js';
import type { ManagerErrorCode } from '../errors.js';
import type { Pkcs11Uri } from './uri.js';

/** The binding's module object (constants and the PKCS11 class). */
export type Pkcs11Binding = typeof Pkcs11Js;
type Handle = Buffer;

/** The environment a PKCS#11 key reads: DROVER_PKCS11_MODULE and DROVER_PKCS11_PIN. */
export type Pkcs11Env = Record<string, string | undefined>;

const PIN_MAX_LENGTH = 256; // bytes: a PIN file larger than this is not a PIN file

let binding: Pkcs11Binding | undefined;

/** Loads pkcs11js on first use, so a manager or CLI without HSM keys never needs it (decision 0037). */
export function loadBinding(): Pkcs11Binding {
  if (binding !== undefined) return binding;
  try {
    binding = createRequire(import.meta.url)('pkcs11js') as Pkcs11Binding;
  } catch (error) {
    throw new ManagerError(
      'PKCS11_UNAVAILABLE',
      'PKCS#11 keys need the optional package pkcs11js, which is not installed or did not build. Install it beside drover (`npm install pkcs11js`; it needs a C++ compiler, make and python3).',
      { cause: error },
    );
  }
  return binding;
}

/** The CKR_* name of a binding error, or undefined for an error that is not PKCS#11's. */
export function ckrName(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const match = /\b(CKR_[A-Z0-9_]+)/.exec(error.message);
  return match?.[1];
}

/** A ManagerError for a failed PKCS#11 call; `what` says what drover was doing, in words an operator knows. */
export function pkcs11Failure(error: unknown, what: string): ManagerError {
  if (error instanceof ManagerError) return error;
  const ckr = ckrName(error) ?? 'an error of the module';
  const removed = ['CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT', 'CKR_DEVICE_ERROR', 'CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED', 'CKR_TOKEN_NOT_RECOGNIZED'];
  if (removed.includes(ckr)) {
    return new ManagerError('PKCS11_TOKEN_NOT_FOUND', `The token went away while ${what} (${ckr}). Put the token back (or check the HSM's connection) and run the command again.`, { cause: error });
  }
  if (ckr === 'CKR_MECHANISM_INVALID' || ckr === 'CKR_KEY_TYPE_INCONSISTENT' || ckr === 'CKR_ATTRIBUTE_VALUE_INVALID' || ckr === 'CKR_TEMPLATE_INCONSISTENT') {
    return new ManagerError('PKCS11_KEY_UNSUPPORTED', `The token refused the key or its mechanism while ${what} (${ckr}). Use a token and module that support the key's mechanism: CKM_EDDSA on CKK_EC_EDWARDS keys (SoftHSM2 2.6 or later, most HSMs' current firmware), CKM_SHA256_RSA_PKCS on RSA keys, CKM_SHA256_HMAC on HMAC secret keys.`, { cause: error });
  }
  return new ManagerError('PKCS11_FAILED', `The PKCS#11 module failed while ${what} (${ckr}). See the HSM's or module's log; run the command again.`, { cause: error });
}

/** The PIN, from the URI's pin-source (`file:/path` or a path) or else DROVER_PKCS11_PIN; never from an argument. */
export function readPin(uri: Pkcs11Uri, env: Pkcs11Env): string {
  if (uri.pinSource !== undefined) {
    const path = uri.pinSource.startsWith('file:') ? fileUriPath(uri.pinSource) : uri.pinSource;
    let text: string;
    try {
      if (statSync(path).size > PIN_MAX_LENGTH) throw new Error('too large');
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new ManagerError('PKCS11_PIN_MISSING', `The PIN file ${path} cannot be read. Create it (one line, mode 0600) or fix pin-source= in the key's URI.`, { cause: error });
    }
    // One line: a trailing newline from `echo PIN > file` is not part of the PIN.
    return text.replace(/\r?\n$/, '');
  }
  const pin = env['DROVER_PKCS11_PIN'];
  if (pin === undefined || pin === '') {
    throw new ManagerError('PKCS11_PIN_MISSING', 'No PIN for the PKCS#11 token: add pin-source=file:/path/to/pin to the key\'s URI (after "?"), or set DROVER_PKCS11_PIN. A PIN is never taken from a command-line argument.');
  }
  return pin;
}

function fileUriPath(source: string): string {
  // file:/abs, file:///abs, file:relative (RFC 8089 and what p11-kit and OpenSC accept).
  const rest = source.slice('file:'.length);
  return rest.startsWith('//') ? rest.slice(2) : rest;
}

/** The module's path: `module-path=` in the URI, else DROVER_PKCS11_MODULE. */
export function modulePath(uri: Pkcs11Uri, env: Pkcs11Env): string {
  const path = uri.modulePath ?? env['DROVER_PKCS11_MODULE'];
  if (path === undefined || path === '') {
    throw new ManagerError('PKCS11_MODULE_NOT_FOUND', 'No PKCS#11 module is named: add module-path=/path/to/module.so to the key\'s URI (after "?"), or set DROVER_PKCS11_MODULE (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so).');
  }
  if (!existsSync(path)) {
    throw new ManagerError('PKCS11_MODULE_NOT_FOUND', `The PKCS#11 module ${path} does not exist. Install the HSM's module (SoftHSM2: apt-get install softhsm2) or fix module-path= / DROVER_PKCS11_MODULE.`);
  }
  return path;
}

interface LoadedModule {
  pkcs11: Pkcs11Js.PKCS11;
  users: number;
}

// One loaded, initialised module per path: PKCS#11 allows one C_Initialize per process and module,
// and C_Finalize ends every session on it, so keys on two tokens of one module share it.
const modules = new Map<string, LoadedModule>();

/** A logged-in session on the token a URI names; close it when done. */
export class TokenSession {
  readonly pkcs11: Pkcs11Js.PKCS11;
  readonly binding: Pkcs11Binding;
  readonly session: Handle;
  readonly #path: string;
  #closed = false;

  private constructor(binding: Pkcs11Binding, path: string, pkcs11: Pkcs11Js.PKCS11, session: Handle) {
    this.binding = binding;
    this.#path = path;
    this.pkcs11 = pkcs11;
    this.session = session;
  }

  /** Opens a read-write session on the URI's token and logs in as its user. */
  static open(uri: Pkcs11Uri, env: Pkcs11Env): TokenSession {
    const path = modulePath(uri, env);
    // The PIN is read before the module loads: a missing PIN is said without touching the token.
    const pin = readPin(uri, env);
    const pkcs11js = loadBinding();
    const module = acquireModule(pkcs11js, path);
    let session: Handle;
    try {
      const slot = findSlot(pkcs11js, module.pkcs11, uri);
      session = module.pkcs11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    } catch (error) {
      releaseModule(path);
      throw pkcs11Failure(error, 'opening a session');
    }
    const opened = new TokenSession(pkcs11js, path, module.pkcs11, session);
    try {
      login(module.pkcs11, pkcs11js, session, uri);
    } catch (error) {
      opened.close();
      throw error;
    }
    return opened;

    function login(pkcs11: Pkcs11Js.PKCS11, lib: Pkcs11Binding, session: Handle, key: Pkcs11Uri): void {
      try {
        pkcs11.C_Login(session, lib.CKU_USER, pin);
      } catch (error) {
        const ckr = ckrName(error);
        // Already logged in through another session of this process: the login is per token.
        if (ckr === 'CKR_USER_ALREADY_LOGGED_IN') return;
        const token = key.token ?? key.serial ?? String(key.slotId);
        const codes: Record<string, [ManagerErrorCode, string]> = {
          CKR_PIN_INCORRECT: ['PKCS11_PIN_INCORRECT', `The PIN for token ${token} is incorrect. Fix the PIN file (pin-source=) or DROVER_PKCS11_PIN; several wrong PINs in a row lock the token.`],
          CKR_PIN_LOCKED: ['PKCS11_PIN_LOCKED', `The user PIN of token ${token} is locked after too many wrong PINs. The token's security officer must unlock it (softhsm2-util / pkcs11-tool --init-pin).`],
          CKR_PIN_LEN_RANGE: ['PKCS11_PIN_INCORRECT', `The PIN for token ${token} has a length the token does not accept. Fix the PIN file (pin-source=) or DROVER_PKCS11_PIN.`],
          CKR_USER_PIN_NOT_INITIALIZED: ['PKCS11_PIN_INCORRECT', `Token ${token} has no user PIN yet. Initialise it (softhsm2-util --init-token ... --pin, or pkcs11-tool --init-pin).`],
        };
        const known = ckr === undefined ? undefined : codes[ckr];
        if (known !== undefined) throw new ManagerError(known[0], known[1], { cause: error });
        throw pkcs11Failure(error, `logging in to token ${token}`);
      }
    }
  }

  /** Ends the session; the module is finalised when no other session of this process uses it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.pkcs11.C_CloseSession(this.session);
    } catch {
      // A session on a removed token is already gone.
    }
    releaseModule(this.#path);
  }
}

function acquireModule(pkcs11js: Pkcs11Binding, path: string): LoadedModule {
  const existing = modules.get(path);
  if (existing !== undefined) {
    existing.users += 1;
    return existing;
  }
  const pkcs11 = new pkcs11js.PKCS11();
  try {
    pkcs11.load(path);
  } catch (error) {
    throw new ManagerError('PKCS11_MODULE_NOT_FOUND', `${path} could not be loaded as a PKCS#11 module. Point module-path= or DROVER_PKCS11_MODULE at the HSM's PKCS#11 library (a .so exporting C_GetFunctionList).`, { cause: error });
  }
  try {
    pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (error) {
    if (ckrName(error) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      safeClose(pkcs11);
      throw pkcs11Failure(error, `initialising the module ${path} (for SoftHSM2: is SOFTHSM2_CONF set, and its tokendir readable?)`);
    }
  }
  const loaded = { pkcs11, users: 1 };
  modules.set(path, loaded);
  return loaded;
}

function releaseModule(path: string): void {
  const loaded = modules.get(path);
  if (loaded === undefined) return;
  loaded.users -= 1;
  if (loaded.users > 0) return;
  modules.delete(path);
  try {
    loaded.pkcs11.C_Finalize();
  } catch {
    // Finalising a module whose device is gone may fail; the process is done with it either way.
  }
  safeClose(loaded.pkcs11);
}

function safeClose(pkcs11: Pkcs11Js.PKCS11): void {
  try {
    pkcs11.close();
  } catch {
    // Nothing left to release.
  }
}

function findSlot(pkcs11js: Pkcs11Binding, pkcs11: Pkcs11Js.PKCS11, uri: Pkcs11Uri): Handle {
  let slots: Handle[];
  try {
    slots = pkcs11.C_GetSlotList(true);
  } catch (error) {
    throw pkcs11Failure(error, 'listing the slots');
  }
  const matches: Handle[] = [];
  let initialised = 0;
  for (const slot of slots) {
    if (uri.slotId !== undefined && slotNumber(slot) !== uri.slotId) continue;
    let info: Pkcs11Js.TokenInfo;
    try {
      info = pkcs11.C_GetTokenInfo(slot);
    } catch {
      continue; // a slot whose token went away while we looked
    }
    if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) continue;
    initialised += 1;
    // Labels and serials are blank-padded fixed-length fields.
    if (uri.token !== undefined && info.label.trimEnd() !== uri.token) continue;
    if (uri.serial !== undefined && info.serialNumber.trimEnd() !== uri.serial) continue;
    if (uri.manufacturer !== undefined && info.manufacturerID.trimEnd() !== uri.manufacturer) continue;
    if (uri.model !== undefined && info.model.trimEnd() !== uri.model) continue;
    matches.push(slot);
  }
  const named = uri.token !== undefined ? `labelled "${uri.token}"` : uri.serial !== undefined ? `with serial ${uri.serial}` : `in slot ${uri.slotId}`;
  if (matches.length === 0) {
    throw new ManagerError('PKCS11_TOKEN_NOT_FOUND', `No token ${named} is present in the PKCS#11 module (${initialised} initialised token(s) present). Insert or connect the token, or fix token= in the key's URI (list tokens with \`pkcs11-tool --module MODULE -L\`).`);
  }
  const [first] = matches;
  if (matches.length > 1 || first === undefined) {
    throw new ManagerError('PKCS11_URI_INVALID', `${matches.length} tokens ${named} are present. Add serial= to the key's URI to name one.`);
  }
  return first;
}

function slotNumber(slot: Handle): number {
  // CK_SLOT_ID is a CK_ULONG in the machine's byte order (8 bytes on 64-bit Linux).
  return slot.length >= 8 ? Number(slot.readBigUInt64LE(0)) : slot.readUInt32LE(0);
}
