/**
 * Real TLS handshakes against a router's HTTPS listener, for tests.
 */
import { connect, type ConnectionOptions, type PeerCertificate } from 'node:tls';

export interface Hello {
  readonly cert: PeerCertificate;
  readonly protocol: string | null;
  readonly alpn: string | false | null;
  readonly reused: boolean;
  readonly session: Buffer | undefined;
  readonly authorized: boolean;
  readonly authorizationError: Error | null;
}

/**
 * Completes a handshake and closes. Certificate checks are left to the test (it compares
 * serials, or passes `ca` to verify). The session ticket arrives after the handshake in
 * TLS 1.3, so the connection stays open until it did (or briefly when none comes).
 */
export function hello(port: number, options: ConnectionOptions = {}): Promise<Hello> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    const done = () => {
      resolve({
        cert: socket.getPeerCertificate(),
        protocol: socket.getProtocol(),
        alpn: socket.alpnProtocol,
        reused: socket.isSessionReused(),
        session,
        authorized: socket.authorized,
        authorizationError: socket.authorizationError ?? null,
      });
      socket.end();
    };
    socket.once('secureConnect', () => {
      if (socket.getProtocol() !== 'TLSv1.3') {
        session = socket.getSession();
        return done();
      }
      // TLS 1.3 tickets follow the handshake; a server that sends none ends the wait.
      const timer = setTimeout(done, 500);
      socket.once('session', (s: Buffer) => {
        session = s;
        clearTimeout(timer);
        done();
      });
    });
    socket.on('error', reject);
  });
}
