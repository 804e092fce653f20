/**
 * @module
 * TLS session tickets that are renewed on every resumption, encrypted with keys shared by
 * every process of the router (the data-plane workers get the same 48 bytes), so a ticket
 * issued by one worker resumes on any other.
 *
 * Why not Node's own ticket handling (`ticketKeys`): OpenSSL issues TLS 1.3 tickets after
 * a resumption only when the ticket callback asks for a renewal, and Node's built-in
 * callback never does. A client gets 2 tickets with a full handshake and none with a
 * resumption, and TLS 1.3 clients use each ticket once (as RFC 8446 §C.4 advises): after
 * two resumptions it needs a full handshake again, so half the connections of a client
 * that reconnects often were full handshakes (`npm run bench` with `BENCH_MODE=tls`: "TICKETS fairway: F2 R0 R0 F2").
 * Here every successful decryption asks for a renewal, so each resumed connection carries
 * a fresh ticket for the next one, as nginx does.
 *
 * The hook is Node's ticket key callback of a native secure context
 * (`enableTicketKeyCallback` / `onticketkeycallback`, stable since Node 0.x but not part
 * of the documented API). OpenSSL takes tickets from the listener's own context whichever
 * context SNI switches to, so the callback goes on that one: {@link install} after the
 * server is created and again after each `setSecureContext`. Where the hook is missing
 * (a future Node), `install` returns false and Node's own handling with the same keys
 * applies: resumption still works, without renewal. `test/tls.test.ts` fails if renewal
 * stops working.
 *
 * The callback runs inside the handshake: it reads memory only. Each ticket's IV is 16
 * fresh CSPRNG bytes, taken from a pool filled {@link IV_POOL} bytes at a time (one fill
 * per ticket cost ~4 µs in a profile of full handshakes, which get two tickets each).
 */
import { randomFillSync } from 'node:crypto';
import type { Server } from 'node:tls';

/** Node's ticket key callback: `[result, hmacKey, aesKey, keyName?, iv?]` (Node copies what it needs). */
type TicketKeyCallback = (name: Buffer, iv: Buffer, encrypt: boolean) => [number, Buffer, Buffer, Buffer?, Buffer?];

interface NativeSecureContext {
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: TicketKeyCallback;
}

/** Bytes of random IVs drawn at once. */
const IV_POOL = 4096;

/** OpenSSL's ticket key callback results. */
const UNKNOWN_KEY = 0;
const ENCRYPT = 1;
const DECRYPTED_RENEW = 2;

export class SessionTickets {
  readonly #name: Buffer;
  /** Filled afresh for every ticket issued (Node copies it before the next call). */
  readonly #iv = Buffer.alloc(16);
  readonly #ivPool = Buffer.alloc(IV_POOL);
  /** Where the next IV starts in the pool; the pool is refilled when it is used up. */
  #ivAt = IV_POOL;
  readonly #encrypt: [number, Buffer, Buffer, Buffer, Buffer];
  readonly #renew: [number, Buffer, Buffer];
  readonly #unknown: [number, Buffer, Buffer];
  readonly #callback: TicketKeyCallback;

  /** `keys`: 48 bytes, Node's `ticketKeys` layout (key name, HMAC key, AES key; 16 bytes each). */
  constructor(keys: Buffer) {
    if (keys.length !== 48) throw new RangeError(`session ticket keys must be 48 bytes, got ${keys.length}`);
    this.#name = keys.subarray(0, 16);
    const hmac = keys.subarray(16, 32);
    const aes = keys.subarray(32, 48);
    this.#encrypt = [ENCRYPT, hmac, aes, this.#name, this.#iv];
    this.#renew = [DECRYPTED_RENEW, hmac, aes];
    // Node reads the keys even for a refusal; OpenSSL then makes a full handshake and a new ticket.
    this.#unknown = [UNKNOWN_KEY, hmac, aes];
    this.#callback = (name, _iv, encrypt) => {
      if (encrypt) {
        if (this.#ivAt === IV_POOL) {
          randomFillSync(this.#ivPool);
          this.#ivAt = 0;
        }
        const at = this.#ivAt;
        this.#ivAt = at + 16;
        this.#ivPool.copy(this.#iv, 0, at, at + 16);
        return this.#encrypt;
      }
      return name.equals(this.#name) ? this.#renew : this.#unknown;
    };
  }

  /**
   * Puts the callback on `server`'s own context; call again after each `setSecureContext`.
   * False: this Node has no such hook (Node's own ticket handling applies, see the module).
   */
  install(server: Server): boolean {
    const context = (server as Server & { _sharedCreds?: { context?: NativeSecureContext } })._sharedCreds?.context;
    if (typeof context?.enableTicketKeyCallback !== 'function') return false;
    context.onticketkeycallback = this.#callback;
    context.enableTicketKeyCallback();
    return true;
  }
}
