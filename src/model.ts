/**
 * @module
 * The one model every provider translates into and the data plane compiles from.
 * Everything here is plain, JSON-serialisable data (so a snapshot can cross process
 * boundaries to data-plane workers) and is treated as immutable once published.
 */

/** An upstream address. `host` is an IP literal (IPv6 without brackets) or a DNS name. */
export interface EndpointSpec {
  readonly host: string;
  readonly port: number;
}

/** One release of an app: a weight and the endpoints that serve it. */
export interface VersionSpec {
  readonly name: string;
  /** Relative weight, >= 0. Weight 0 receives no traffic. */
  readonly weight: number;
  readonly endpoints: readonly EndpointSpec[];
}

export type LoadBalancing = 'least-outstanding' | 'round-robin';

/** A named set of fully-qualified domains and versions. */
export interface AppSpec {
  readonly name: string;
  /** Lower-case FQDNs; a leading `*.` is a one-label wildcard. Bare names already expanded. */
  readonly domains: readonly string[];
  readonly versions: readonly VersionSpec[];
  readonly loadBalancing: LoadBalancing;
  /** Which provider produced this app (`file`, `kubernetes`). */
  readonly source: string;
}

/** Router-wide timeouts, in milliseconds. */
export interface Timeouts {
  /** TCP connect to an endpoint. Exceeded: 504 (after trying other endpoints). */
  readonly connect: number;
  /** From request sent to upstream response headers. Exceeded: 504. */
  readonly upstreamHeaders: number;
  /** Longest pause between two upstream body chunks. Exceeded: 504, or the connection is cut if the response started. */
  readonly upstreamIdle: number;
  /** Client keep-alive idle time between requests. */
  readonly clientKeepAlive: number;
  /** Time allowed for a client to send the request headers. */
  readonly clientHeaders: number;
}

export interface Limits {
  /** Largest request body in bytes (413 above it). */
  readonly maxBodySize: number;
  /** Largest request header block in bytes (431 above it). */
  readonly maxHeaderSize: number;
  /** Most request header fields (431 above it). */
  readonly maxHeadersCount: number;
}

export interface ListenSpec {
  readonly http: string;
  readonly admin: string;
}

/** Router-wide settings, owned by the file provider. */
export interface RouterSettings {
  readonly listen: ListenSpec;
  readonly platformDomain: string | undefined;
  readonly timeouts: Timeouts;
  readonly limits: Limits;
  readonly accessLog: boolean;
}

/** What one provider currently says. A provider always sends its whole state (level-triggered). */
export interface ProviderState {
  readonly apps: readonly AppSpec[];
  /** Only the settings-owning provider (file) sets this. */
  readonly settings?: RouterSettings;
}

/** A configuration problem confined to one app: the app is disabled, the rest serve. */
export interface AppError {
  readonly app: string;
  readonly code: string;
  readonly message: string;
}

/** The whole desired state at one moment, with a generation that only grows. */
export interface Snapshot {
  readonly generation: number;
  readonly createdAt: string;
  readonly settings: RouterSettings;
  /** Apps that passed validation, sorted by name. */
  readonly apps: readonly AppSpec[];
  /** Apps that were disabled, with why. */
  readonly errors: readonly AppError[];
}

export function endpointKey(e: EndpointSpec): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
