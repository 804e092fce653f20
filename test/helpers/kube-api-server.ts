/**
 * @module
 * A test Kubernetes API server: an in-memory store behind node:http on 127.0.0.1, written
 * to the Kubernetes API conventions so that the real `@kubernetes/client-node` and
 * `kubectl --server` talk to it as to a kube-apiserver. No real kube-apiserver can run on
 * these machines; this is the stand-in the Kubernetes tests use, never a mock of the
 * client.
 *
 * Contract:
 * - Resources: core/v1 `namespaces` (cluster-scoped), `services`, `secrets`, `configmaps`,
 *   `serviceaccounts`, `endpoints`, `events`; `discovery.k8s.io/v1` `endpointslices`;
 *   `coordination.k8s.io/v1` `leases`; `apps/v1` `deployments`; `policy/v1`
 *   `poddisruptionbudgets`; `rbac.authorization.k8s.io/v1` `roles`, `rolebindings`
 *   (namespaced), `clusterroles`, `clusterrolebindings` (cluster-scoped);
 *   `authorization.k8s.io/v1` `selfsubjectaccessreviews` (create only, see Authorization).
 *   Namespaced paths (`/api/v1/namespaces/{ns}/services[/{name}]`) and all-namespaces
 *   list/watch (`/api/v1/services`). `services/status`, `namespaces/status`,
 *   `deployments/status` and `poddisruptionbudgets/status` exist as subresources; as in
 *   Kubernetes, writes to the main resource keep the stored status and writes to `/status`
 *   change only the status. No controllers run: a Deployment gets no Pods and no status.
 * - One global resourceVersion, a string of an integer, increasing by one on every write
 *   to any resource (as etcd's revision does). A write that changes nothing (an update or
 *   patch whose result equals the stored object) is a no-op: no new resourceVersion, no
 *   event.
 * - LIST: `{kind: 'XList', apiVersion, metadata: {resourceVersion, continue?,
 *   remainingItemCount?}, items}` with `content-type: application/json`, items sorted by
 *   namespace then name and WITHOUT `kind`/`apiVersion` (as kube-apiserver sends them).
 *   `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`, `>`, `<`),
 *   `fieldSelector` (`metadata.name`, `metadata.namespace` with `=`, `==`, `!=`, plus
 *   `type` on Secrets and `involvedObject.*`/`reason`/`type` on Events; any other field is
 *   400 BadRequest). `limit`/`continue` page over a snapshot taken at the first page;
 *   a continue token outlives neither `compact()` nor the history window (410 Expired).
 *   `resourceVersion` newer than the store's is 504 "Too large resource version";
 *   `resourceVersionMatch=Exact` is served only at the current resourceVersion (else 410).
 *   Any other resourceVersion returns the current state.
 * - GET, POST (create: sets uid, creationTimestamp, resourceVersion, generation 1;
 *   honours generateName; 409 AlreadyExists; 404 when the namespace does not exist;
 *   422 Invalid for a missing or malformed name or a bad label/annotation value; 400 for
 *   a MicroTime — Lease `spec.acquireTime`/`renewTime`, Event `eventTime` — without
 *   exactly six fractional digits, as kube-apiserver's decoder rejects `Date#toISOString()`),
 *   PUT (404 when missing; 409 Conflict when `metadata.resourceVersion` is stale; no
 *   resourceVersion = unconditional), PATCH (`application/merge-patch+json` RFC 7386,
 *   `application/strategic-merge-patch+json` = merge for maps, lists merged by key where
 *   Kubernetes declares one — Service `spec.ports` by `port`, `ownerReferences` by `uid`,
 *   `conditions` by `type`, `finalizers` as a set — with `$patch`,
 *   `$setElementOrder/`, `$deleteFromPrimitiveList/`, `$retainKeys` directives;
 *   `application/json-patch+json` RFC 6902; others 415; a patch that sets
 *   `metadata.resourceVersion` is a precondition → 409 when stale), DELETE (Services and
 *   Namespaces answer with the deleted object, others with a Success Status;
 *   `preconditions` honoured; the DELETED event carries the final object at the deletion's
 *   resourceVersion), DELETE on a collection (deletecollection, with selectors).
 *   `dryRun=All` validates and answers without writing. `generation` increases when
 *   anything outside `metadata` and `status` changes.
 * - Service defaults as kube-apiserver applies them: `type: ClusterIP`, a clusterIP from
 *   10.96.0.0/12 (kept on updates that omit it), `clusterIPs`, `ipFamilies`,
 *   `sessionAffinity: None`, port `protocol: TCP` and `targetPort` = `port`, nodePorts for
 *   NodePort/LoadBalancer. Secrets: `type: Opaque`, `stringData` folded into base64
 *   `data`. Namespaces: `status.phase: Active`. Deployments: `replicas: 1`, RollingUpdate
 *   25%/25%, `revisionHistoryLimit: 10`, `progressDeadlineSeconds: 600`, and the pod
 *   template's `restartPolicy`, `terminationGracePeriodSeconds: 30`, `dnsPolicy`,
 *   `schedulerName`, container `imagePullPolicy` (Always for `:latest` or no tag),
 *   `terminationMessagePath/Policy`, port `protocol: TCP`, probe timeouts/periods/
 *   thresholds and `httpGet.scheme: HTTP`. Strategic merge patches merge a Deployment's
 *   containers, initContainers, volumes and imagePullSecrets by `name`, container `ports`
 *   by `containerPort`, `env` by `name`, `volumeMounts` by `mountPath` (RBAC `rules` and
 *   `subjects` are replaced whole, as Kubernetes declares them).
 * - Validation beyond names and labels (422 Invalid, kube-apiserver's field messages):
 *   a Deployment needs `spec.selector` matching the template's labels and containers with
 *   a name and an image; a PolicyRule needs `verbs`, and `apiGroups` + `resources` or
 *   (ClusterRole only) `nonResourceURLs`; a binding needs a `roleRef` (apiGroup
 *   `rbac.authorization.k8s.io`, kind Role/ClusterRole — ClusterRole only for a
 *   ClusterRoleBinding) that no update may change, and subjects of kind ServiceAccount
 *   (with a namespace in a ClusterRoleBinding), User or Group.
 * - Errors are `Status` objects `{kind: 'Status', apiVersion: 'v1', metadata: {},
 *   status: 'Failure', message, reason, details?, code}`.
 * - WATCH (`watch=true`/`watch=1`, or the legacy `/watch/` path prefix): a 200 response,
 *   chunked, one JSON `{type, object}` per line. resourceVersion omitted or "0" →
 *   synthetic ADDED events for the current state, then live events; N → every retained
 *   event after N, then live (an N newer than the store simply waits for it, as etcd
 *   does). N older than the retained history → one `ERROR` event with a Status
 *   `{code: 410, reason: 'Expired'}`, then a clean close. With a selector, an update that
 *   moves an object into the selection is ADDED and one that moves it out is DELETED (the
 *   old object at the new resourceVersion), as kube-apiserver's watch cache does.
 *   `allowWatchBookmarks=true` → a BOOKMARK `{kind, apiVersion, metadata:
 *   {resourceVersion}}` every `bookmarkIntervalMs`; `sendInitialEvents=true` → the
 *   initial events end with a BOOKMARK annotated `k8s.io/initial-events-end: "true"`;
 *   `timeoutSeconds` ends the response cleanly.
 * - History: the last `historySize` events across all resources (default 10,000). The
 *   history starts empty after the default namespaces, so a watch from an older
 *   resourceVersion gets 410, as a freshly started watch cache would answer.
 * - For kubectl (checked with kubectl 1.32 and Debian's 1.20): `/version`, `/api`,
 *   `/apis`, `/api/v1`, `/apis/{group}[/v1]` (legacy, non-aggregated discovery),
 *   `/healthz`, `/livez`, `/readyz`. `/openapi/v3` answers a minimal document per group
 *   version — each resource's PATCH operation with its `fieldValidation` parameter, no
 *   schemas — which is what kubectl's default `--validate=strict` needs (without it kubectl
 *   refuses to apply); kubectl then sends `fieldValidation=Strict`, which this server
 *   accepts without checking fields. `/openapi/v2` answers an empty protobuf document
 *   (older kubectl reads only that). Lacking schemas, kubectl computes apply patches from
 *   its built-in types. LIST and WATCH asked for `as=Table` (`kubectl get [-w]`) answer
 *   `meta.k8s.io/v1` Tables.
 * - Authentication: a request is the admin (allowed everything, never authorized) unless
 *   it carries a bearer token of the `tokens` option: then it is that token's user
 *   (`system:serviceaccount:<ns>:<name>` for a ServiceAccount, in the groups
 *   `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`).
 *   With `token`, a request must carry that token (the admin's) or a `tokens` one, else
 *   401; with `tokens` and no `token`, an unknown bearer token is 401 and no token is the
 *   admin. `requests[].user` tells who asked.
 * - Authorization: the RBAC authorizer over the stored Roles, ClusterRoles, RoleBindings and
 *   ClusterRoleBindings. A rule allows a request when its verbs, apiGroups, resources
 *   (`resource`, `resource/subresource`, `*`, `*` + `/subresource`) and resourceNames (if
 *   any) all match; ClusterRoleBindings grant everywhere (cluster scope and every
 *   namespace, all-namespaces lists included), RoleBindings only in their namespace (to a
 *   Role there or a ClusterRole). Subjects: ServiceAccount (its namespace defaults to the
 *   RoleBinding's), User, Group. As kube-apiserver's bootstrap policy grants every
 *   authenticated user, discovery and health paths (`/api*`, `/apis*`, `/version`,
 *   `/openapi*`, `/healthz`, `/livez`, `/readyz`) and creating SelfSubjectAccessReviews
 *   are always allowed. Verbs: get/list/watch (GET on an object, a collection, with
 *   `watch`), create, update, patch, delete, deletecollection; a request on
 *   `namespaces/{name}` is in that namespace. `POST
 *   /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` answers 201 with the spec and
 *   `status: {allowed, reason?}` for the requester (the admin: always allowed, no reason;
 *   a `tokens` user: RBAC, reason `RBAC: allowed by ClusterRoleBinding "b" of ClusterRole
 *   "r" to ServiceAccount "name/ns"` or `RBAC: allowed by RoleBinding "b/ns" of Role "r"
 *   to …`; a denial has no reason unless a binding names a missing role); exactly one of
 *   `resourceAttributes`/`nonResourceAttributes` or 422. With `enforceRbac`, every request
 *   of a `tokens` user is authorized first (before routing, so a denial wins over a 404):
 *   a 403 Status `{reason: 'Forbidden', details: {name?, group?, kind: <resource>}}`
 *   worded as kube-apiserver does — `services is forbidden: User "u" cannot list resource
 *   "services" in API group "" at the cluster scope`, `leases.coordination.k8s.io "l" is
 *   forbidden: User "u" cannot update resource "leases" in API group
 *   "coordination.k8s.io" in the namespace "deis"`. Without it, only SelfSubjectAccessReviews
 *   consult RBAC.
 * - `kubeConfig()`, `kubeconfigYaml()` and `writeKubeconfig(path)` take `{token?,
 *   namespace?}`: a kubeconfig whose user is a `tokens` user (default: the `token` option).
 *   kubectl (client-go) sends no bearer token over plain http: start the server with
 *   `tls: true` (HTTPS, a self-signed certificate, skipped verification in the kubeconfig)
 *   to run kubectl as a token user, and give the admin a `token` too (over https kubectl
 *   asks for a user name when its kubeconfig has no credentials). `@kubernetes/client-node`
 *   sends the token either way.
 * - Test controls: `apply`/`remove`/`get`/`list` act on the store directly and produce
 *   the same resourceVersions and watch events as the HTTP API (`apply` creates missing
 *   namespaces and never conflicts). Faults: `dropWatches()` ends every watch response
 *   cleanly; `resetConnections()` sends a TCP RST on every socket; `compact()` forgets
 *   all history (every older resourceVersion then gets 410); `stop()`/`start()` close and
 *   reopen the listener on the same port (stop resets every socket; the store survives,
 *   and `apply` works while stopped); `restartFresh()` is stop + an empty store (default
 *   namespaces only) whose resourceVersion starts again low + start, as an API server
 *   restored from an old etcd backup; `silenceWatches()` keeps the watch connections that
 *   are open now but sends them nothing more (no events, bookmarks or timeouts: a
 *   silently dead watch); new watches are live. `requests` logs every request;
 *   `waitForWatch()` resolves when a matching watch has been established (its replay
 *   sent), so tests await instead of sleeping.
 * - `close()` is final and idempotent.
 * - Importing this module imports `@kubernetes/client-node` (for `kubeConfig()`), which
 *   costs a tap test file 5–7 s: import it only from tests that need Kubernetes.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';

/** Any Kubernetes object as JSON. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [field: string]: unknown;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface KubeApiServerOptions {
  /** Port on 127.0.0.1; 0 (default) picks one. */
  port?: number;
  /**
   * Serve HTTPS with a self-signed certificate (`url` is then `https://`). kubectl sends a
   * bearer token only over TLS: use this to run kubectl as a `tokens` user.
   */
  tls?: boolean;
  /** Interval between BOOKMARK events on watches that allow them (default 1000 ms). */
  bookmarkIntervalMs?: number;
  /** Events retained for watches resuming from a resourceVersion (default 10,000). */
  historySize?: number;
  /** The resourceVersion of the empty store, before the default namespaces (default 1). */
  initialResourceVersion?: number;
  /** Namespaces that exist at start (default `default`, `kube-system`, `kube-public`, `kube-node-lease`). */
  namespaces?: string[];
  /** Objects stored at start, after the namespaces. */
  objects?: KubeObject[];
  /** Require `Authorization: Bearer <token>` on every request (that token is the admin). */
  token?: string;
  /**
   * Bearer tokens of users, token → user name, e.g. `{ 's3cret': 'system:serviceaccount:deis:fairway' }`.
   * A ServiceAccount user is also in the groups `system:serviceaccounts`,
   * `system:serviceaccounts:<ns>` and `system:authenticated`; any other user in
   * `system:authenticated`. SelfSubjectAccessReviews of these users are answered from the
   * stored RBAC objects; other requests only when `enforceRbac` is set.
   */
  tokens?: Record<string, string>;
  /** Authorize every request of a `tokens` user against the stored RBAC objects (403 Forbidden otherwise). */
  enforceRbac?: boolean;
  /** Close watches that asked for no `timeoutSeconds` after this many seconds (default: never). */
  defaultWatchTimeoutSeconds?: number;
}

export interface KubeconfigOptions {
  /** Bearer token of the kubeconfig's user, e.g. one of the `tokens` option. */
  token?: string;
  /** The context's namespace (default `default`). */
  namespace?: string;
}

export interface RequestRecord {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Query parameters (last value wins). */
  query: Record<string, string>;
  watch: boolean;
  /** The `tokens` user who made the request; undefined for the admin. */
  user: string | undefined;
  /** Response status, once the response has been started (200 for watches). */
  status?: number;
}

export interface WatchInfo {
  path: string;
  /** Plural resource name, e.g. `services`. */
  resource: string;
  group: string;
  /** Namespace of the watch, undefined for all namespaces. */
  namespace: string | undefined;
  /** The resourceVersion the client asked to start from (undefined when omitted). */
  resourceVersion: string | undefined;
  labelSelector: string | undefined;
  fieldSelector: string | undefined;
  allowWatchBookmarks: boolean;
  timeoutSeconds: number | undefined;
}

export interface KubeApiServer {
  /** `http://127.0.0.1:PORT` (`https://` with `tls`) — stable across `stop()`/`start()` and `restartFresh()`. */
  readonly url: string;
  readonly port: number;
  /** The current global resourceVersion. */
  readonly resourceVersion: string;
  /** Every request received, in order. */
  readonly requests: readonly RequestRecord[];
  /** The watches open now (silenced ones included). */
  readonly activeWatches: readonly WatchInfo[];
  /**
   * A KubeConfig for the real client: this server, `skipTLSVerify: true`, namespace
   * `default` (or `namespace`); its user carries `token` (default: the `token` option, if any).
   */
  kubeConfig(options?: KubeconfigOptions): KubeConfig;
  /** The same configuration as kubeconfig YAML. */
  kubeconfigYaml(options?: KubeconfigOptions): string;
  /** Writes `kubeconfigYaml()` to `path` (for kubectl `--kubeconfig` or KUBECONFIG). */
  writeKubeconfig(path: string, options?: KubeconfigOptions): Promise<void>;
  /** Creates or replaces an object (by apiVersion + kind + namespace + name); returns the stored object. */
  apply(object: KubeObject): KubeObject;
  /** Deletes an object; `kind` is a Kind (`Service`) or a plural (`services`). Returns whether it existed. */
  remove(kind: string, namespace: string | undefined, name: string): boolean;
  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Objects of a kind, in one namespace or all. */
  list(kind: string, namespace?: string): KubeObject[];
  /** Resolves with the first watch matching `filter` established after this call. */
  waitForWatch(filter?: (watch: WatchInfo) => boolean, timeoutMs?: number): Promise<WatchInfo>;
  /** Ends every watch response cleanly (the client sees a normal end of stream). */
  dropWatches(): void;
  /** Destroys every socket with a TCP RST. */
  resetConnections(): void;
  /** Forgets all history: any resourceVersion older than the current one gets 410 Expired. */
  compact(): void;
  /** Keeps the watches open now but sends them nothing more. */
  silenceWatches(): void;
  /** Stops listening and resets every socket; the store is kept. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /** stop(), empty store restarting at `resourceVersion` (default: the initial one), start(). */
  restartFresh(options?: { resourceVersion?: number }): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------
// Resources

interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  /** Has a `/status` subresource whose content the main resource cannot write. */
  statusSubresource: boolean;
  /** DELETE answers with the deleted object instead of a Status. */
  returnsDeletedObject: boolean;
  /** Field selectors beyond metadata.name / metadata.namespace. */
  fields: string[];
  /** The verbs discovery lists; a resource with only `create` is a review: answered, never stored. */
  verbs: string[];
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
const RBAC_GROUP = 'rbac.authorization.k8s.io';

const RESOURCES: readonly ResourceType[] = [
  resource('', 'namespaces', 'namespace', 'Namespace', false, ['ns'], { statusSubresource: true, returnsDeletedObject: true }),
  resource('', 'services', 'service', 'Service', true, ['svc'], { statusSubresource: true, returnsDeletedObject: true }),
  resource('', 'secrets', 'secret', 'Secret', true, [], { fields: ['type'] }),
  resource('', 'configmaps', 'configmap', 'ConfigMap', true, ['cm']),
  resource('', 'serviceaccounts', 'serviceaccount', 'ServiceAccount', true, ['sa']),
  resource('', 'endpoints', 'endpoints', 'Endpoints', true, ['ep']),
  resource('', 'events', 'event', 'Event', true, ['ev'], {
    fields: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'],
  }),
  resource('apps', 'deployments', 'deployment', 'Deployment', true, ['deploy'], { statusSubresource: true }),
  resource('policy', 'poddisruptionbudgets', 'poddisruptionbudget', 'PodDisruptionBudget', true, ['pdb'], { statusSubresource: true }),
  resource(RBAC_GROUP, 'roles', 'role', 'Role', true, []),
  resource(RBAC_GROUP, 'rolebindings', 'rolebinding', 'RoleBinding', true, []),
  resource(RBAC_GROUP, 'clusterroles', 'clusterrole', 'ClusterRole', false, []),
  resource(RBAC_GROUP, 'clusterrolebindings', 'clusterrolebinding', 'ClusterRoleBinding', false, []),
  resource('authorization.k8s.io', 'selfsubjectaccessreviews', 'selfsubjectaccessreview', 'SelfSubjectAccessReview', false, [], { verbs: ['create'] }),
  resource('discovery.k8s.io', 'endpointslices', 'endpointslice', 'EndpointSlice', true, []),
  resource('coordination.k8s.io', 'leases', 'lease', 'Lease', true, []),
];

function resource(
  group: string,
  plural: string,
  singular: string,
  kind: string,
  namespaced: boolean,
  shortNames: string[],
  extra: Partial<Pick<ResourceType, 'statusSubresource' | 'returnsDeletedObject' | 'fields' | 'verbs'>> = {},
): ResourceType {
  return { group, version: 'v1', plural, singular, kind, namespaced, shortNames, statusSubresource: false, returnsDeletedObject: false, fields: [], verbs: VERBS, ...extra };
}

/** A review resource (SelfSubjectAccessReview): POST answers it, nothing is stored or listed. */
const isReview = (r: ResourceType) => r.verbs.length === 1 && r.verbs[0] === 'create';

const groupVersion = (r: ResourceType): string => (r.group ? `${r.group}/${r.version}` : r.version);
const NAMESPACES = RESOURCES[0]!;

function resourceByKind(kind: string, apiVersion?: string): ResourceType {
  const found = RESOURCES.find(
    (r) => (r.kind === kind || r.plural === kind || r.kind.toLowerCase() === kind.toLowerCase()) && (apiVersion === undefined || groupVersion(r) === apiVersion),
  );
  if (!found) throw new Error(`kube-api-server: no resource ${apiVersion ? apiVersion + ' ' : ''}${kind}`);
  return found;
}

// ---------------------------------------------------------------------------------------
// Errors

interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: Record<string, unknown>;
  code: number;
}

class ApiError extends Error {
  readonly status: Status;
  constructor(code: number, reason: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
  }
}

const notFound = (r: ResourceType, name: string) =>
  new ApiError(404, 'NotFound', `${qualified(r)} "${name}" not found`, { name, ...(r.group ? { group: r.group } : {}), kind: r.plural });
const conflict = (r: ResourceType, name: string, why: string) =>
  new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`, { name, ...(r.group ? { group: r.group } : {}), kind: r.plural });
const invalid = (r: ResourceType, name: string, causes: string[]) =>
  new ApiError(422, 'Invalid', `${r.kind} "${name}" is invalid: ${causes.join(', ')}`, {
    name,
    ...(r.group ? { group: r.group } : {}),
    kind: r.kind,
    causes: causes.map((message) => ({ reason: 'FieldValueInvalid', message, field: message.split(':')[0] })),
  });
const badRequest = (message: string) => new ApiError(400, 'BadRequest', message);
const expired = (message: string) => new ApiError(410, 'Expired', message);
const qualified = (r: ResourceType) => (r.group ? `${r.plural}.${r.group}` : r.plural);

// ---------------------------------------------------------------------------------------
// Selectors

type Requirement =
  | { key: string; op: 'exists' | 'notexists' }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'gt' | 'lt'; value: number };

/** Parses a Kubernetes label selector (`a=b,c!=d,e in (f,g),!h`). Throws 400 BadRequest on bad syntax. */
export function parseLabelSelector(selector: string | undefined): Requirement[] {
  if (!selector || !selector.trim()) return [];
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  const key = '([A-Za-z0-9][-A-Za-z0-9_./]*)';
  return parts.map((raw): Requirement => {
    const part = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^!\\s*${key}$`).exec(part))) return { key: m[1]!, op: 'notexists' };
    if ((m = new RegExp(`^${key}$`).exec(part))) return { key: m[1]!, op: 'exists' };
    if ((m = new RegExp(`^${key}\\s+(in|notin)\\s*\\(([^)]*)\\)$`).exec(part))) {
      const values = m[3]!.split(',').map((v) => v.trim());
      return { key: m[1]!, op: m[2] as 'in' | 'notin', values };
    }
    if ((m = new RegExp(`^${key}\\s*(==|=|!=)\\s*([-A-Za-z0-9_.]*)$`).exec(part))) {
      return { key: m[1]!, op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]!] };
    }
    if ((m = new RegExp(`^${key}\\s*(>|<)\\s*(-?\\d+)$`).exec(part))) {
      return { key: m[1]!, op: m[2] === '>' ? 'gt' : 'lt', value: Number(m[3]) };
    }
    throw badRequest(`unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=, gt, lt`);
  });
}

function labelsMatch(requirements: Requirement[], labels: Record<string, string> | undefined): boolean {
  return requirements.every((req) => {
    const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, req.key);
    const value = has ? labels![req.key]! : undefined;
    switch (req.op) {
      case 'exists':
        return has;
      case 'notexists':
        return !has;
      case 'in':
        return has && req.values.includes(value!);
      case 'notin':
        return !has || !req.values.includes(value!);
      case 'gt':
        return has && Number(value) > req.value;
      case 'lt':
        return has && Number(value) < req.value;
    }
  });
}

interface FieldRequirement {
  path: string;
  value: string;
  negate: boolean;
}

function parseFieldSelector(selector: string | undefined, r: ResourceType): FieldRequirement[] {
  if (!selector || !selector.trim()) return [];
  return selector.split(',').map((raw) => {
    const m = /^\s*([A-Za-z0-9.]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(raw);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${raw}'`);
    const path = m[1]!;
    if (path !== 'metadata.name' && path !== 'metadata.namespace' && !r.fields.includes(path)) {
      throw badRequest(`field label not supported: ${path}`);
    }
    return { path, value: m[3]!, negate: m[2] === '!=' };
  });
}

function fieldsMatch(requirements: FieldRequirement[], object: KubeObject): boolean {
  return requirements.every((req) => {
    let value: unknown = object;
    for (const part of req.path.split('.')) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
    const text = value === undefined || value === null ? '' : String(value);
    return req.negate ? text !== req.value : text === req.value;
  });
}

// ---------------------------------------------------------------------------------------
// Patches

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isMap(patch)) return clone(patch);
  const result: Record<string, unknown> = isMap(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** Strategic-merge list semantics Kubernetes declares for the fields these resources have. */
function listStrategy(kind: string, path: string): { mergeKey: string } | 'set' | undefined {
  if (kind === 'Service' && path === 'spec.ports') return { mergeKey: 'port' };
  if (kind === 'Deployment' && path.startsWith('spec.template.spec.')) {
    const pod = path.slice('spec.template.spec.'.length);
    if (pod === 'containers' || pod === 'initContainers' || pod === 'volumes' || pod === 'imagePullSecrets') return { mergeKey: 'name' };
    const m = /^(?:containers|initContainers)\.(ports|env|volumeMounts)$/.exec(pod);
    if (m) return { mergeKey: m[1] === 'ports' ? 'containerPort' : m[1] === 'env' ? 'name' : 'mountPath' };
  }
  if (path === 'metadata.ownerReferences') return { mergeKey: 'uid' };
  if (path === 'metadata.finalizers' || path === 'spec.finalizers') return 'set';
  if (path === 'status.conditions') return { mergeKey: 'type' };
  return undefined;
}

/** Strategic merge patch: JSON merge for maps, lists merged by key where Kubernetes declares one. */
function strategicMerge(kind: string, target: unknown, patch: unknown, path = ''): unknown {
  if (!isMap(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return strategicMerge(kind, undefined, rest, path);
  }
  const result: Record<string, unknown> = isMap(target) ? { ...target } : {};
  const at = (key: string) => (path ? `${path}.${key}` : key);
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue;
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length);
      const current = Array.isArray(result[field]) ? (result[field] as unknown[]) : [];
      result[field] = current.filter((item) => !(value as unknown[]).includes(item));
      continue;
    }
    if (value === null) {
      delete result[key];
      continue;
    }
    const strategy = listStrategy(kind, at(key));
    if (Array.isArray(value) && strategy === 'set') {
      const current = Array.isArray(result[key]) ? (result[key] as unknown[]) : [];
      result[key] = [...current, ...value.filter((v) => !current.includes(v))];
    } else if (Array.isArray(value) && typeof strategy === 'object') {
      result[key] = mergeList(kind, Array.isArray(result[key]) ? (result[key] as unknown[]) : [], value, strategy.mergeKey, at(key));
    } else if (isMap(value) && value.$patch === 'delete') {
      delete result[key];
    } else {
      result[key] = strategicMerge(kind, result[key], value, at(key));
    }
  }
  for (const [key, order] of Object.entries(patch)) {
    if (!key.startsWith('$setElementOrder/') || !Array.isArray(order)) continue;
    const field = key.slice('$setElementOrder/'.length);
    const list = result[field];
    if (!Array.isArray(list)) continue;
    const strategy = listStrategy(kind, at(field));
    const keyOf = (item: unknown) => (strategy && strategy !== 'set' && isMap(item) ? item[strategy.mergeKey] : item);
    const orderKeys = order.map(keyOf);
    const rank = (item: unknown) => {
      const i = orderKeys.findIndex((k) => isDeepStrictEqual(k, keyOf(item)));
      return i === -1 ? orderKeys.length : i;
    };
    result[field] = [...list].sort((a, b) => rank(a) - rank(b));
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys as string[]);
    for (const key of Object.keys(result)) if (!keep.has(key)) delete result[key];
  }
  return result;
}

function mergeList(kind: string, current: unknown[], patch: unknown[], mergeKey: string, path: string): unknown[] {
  if (patch.some((item) => isMap(item) && item.$patch === 'replace')) {
    return patch.filter((item) => !(isMap(item) && item.$patch === 'replace')).map((item) => strategicMerge(kind, undefined, item, path));
  }
  const result = current.map((item) => clone(item));
  for (const item of patch) {
    if (!isMap(item)) {
      result.push(clone(item));
      continue;
    }
    const index = result.findIndex((existing) => isMap(existing) && isDeepStrictEqual(existing[mergeKey], item[mergeKey]));
    if (item.$patch === 'delete') {
      if (index !== -1) result.splice(index, 1);
    } else if (index !== -1) {
      result[index] = strategicMerge(kind, result[index], item, path);
    } else {
      result.push(strategicMerge(kind, undefined, item, path));
    }
  }
  return result;
}

/** RFC 6902 JSON patch. Throws 422 Invalid when an operation cannot apply. */
function jsonPatch(r: ResourceType, name: string, target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw badRequest('json patch must be an array of operations');
  let doc = clone(target);
  const fail = (message: string): never => {
    throw invalid(r, name, [message]);
  };
  const parse = (pointer: unknown): string[] => {
    if (typeof pointer !== 'string' || (pointer !== '' && !pointer.startsWith('/'))) fail(`invalid JSON pointer: ${String(pointer)}`);
    return (pointer as string) === '' ? [] : (pointer as string).slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  };
  const parentOf = (parts: string[]): { parent: Record<string, unknown> | unknown[]; last: string } => {
    let node: unknown = doc;
    for (const part of parts.slice(0, -1)) {
      node = Array.isArray(node) ? node[Number(part)] : isMap(node) ? node[part] : undefined;
      if (node === undefined) fail(`doc is missing path: /${parts.join('/')}`);
    }
    if (!Array.isArray(node) && !isMap(node)) fail(`doc is missing path: /${parts.join('/')}`);
    return { parent: node as Record<string, unknown> | unknown[], last: parts[parts.length - 1]! };
  };
  const read = (parts: string[]): unknown => {
    let node: unknown = doc;
    for (const part of parts) {
      node = Array.isArray(node) ? node[Number(part)] : isMap(node) ? node[part] : undefined;
      if (node === undefined) fail(`doc is missing path: /${parts.join('/')}`);
    }
    return node;
  };
  const remove = (parts: string[]): unknown => {
    const { parent, last } = parentOf(parts);
    if (Array.isArray(parent)) {
      const i = Number(last);
      if (!(i >= 0 && i < parent.length)) fail(`unable to remove nonexistent index: /${parts.join('/')}`);
      return parent.splice(i, 1)[0];
    }
    if (!(last in parent)) fail(`unable to remove nonexistent key: ${last}`);
    const old = parent[last];
    delete parent[last];
    return old;
  };
  const add = (parts: string[], value: unknown) => {
    if (parts.length === 0) {
      doc = value;
      return;
    }
    const { parent, last } = parentOf(parts);
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!(i >= 0 && i <= parent.length)) fail(`index out of bounds: /${parts.join('/')}`);
      parent.splice(i, 0, value);
    } else parent[last] = value;
  };
  for (const op of operations) {
    if (!isMap(op)) throw badRequest('json patch operation must be an object');
    const path = parse(op.path);
    switch (op.op) {
      case 'add':
        add(path, clone(op.value));
        break;
      case 'remove':
        remove(path);
        break;
      case 'replace':
        remove(path);
        add(path, clone(op.value));
        break;
      case 'move':
        add(path, remove(parse(op.from)));
        break;
      case 'copy':
        add(path, clone(read(parse(op.from))));
        break;
      case 'test':
        if (!isDeepStrictEqual(read(path), op.value)) fail(`testing value ${String(op.path)} failed`);
        break;
      default:
        throw badRequest(`unexpected json patch operation: ${String(op.op)}`);
    }
  }
  return doc;
}

// ---------------------------------------------------------------------------------------
// Protobuf (only what `kubectl auth can-i` sends)

/** The fields of one protobuf message: number → values (varints as numbers, length-delimited as bytes). */
function protobufFields(buf: Buffer): Map<number, Array<number | Buffer>> {
  const fields = new Map<number, Array<number | Buffer>>();
  let at = 0;
  const varint = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (at >= buf.length) throw badRequest('error decoding body: truncated protobuf');
      const byte = buf[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
      if (byte < 0x80) return value;
    }
  };
  while (at < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    let value: number | Buffer;
    switch (key & 7) {
      case 0:
        value = varint();
        break;
      case 1:
        value = buf.subarray(at, (at += 8));
        break;
      case 2: {
        const length = varint();
        value = buf.subarray(at, (at += length));
        break;
      }
      case 5:
        value = buf.subarray(at, (at += 4));
        break;
      default:
        throw badRequest('error decoding body: unsupported protobuf wire type');
    }
    fields.set(field, [...(fields.get(field) ?? []), value]);
  }
  return fields;
}

/**
 * A SelfSubjectAccessReview in Kubernetes' protobuf envelope (`k8s\0` + runtime.Unknown
 * {typeMeta 1, raw 2}) as JSON: spec 2 → resourceAttributes 1 (namespace 1, verb 2, group
 * 3, version 4, resource 5, subresource 6, name 7) or nonResourceAttributes 2 (path 1, verb 2).
 */
function selfSubjectAccessReviewFromProtobuf(buf: Buffer): KubeObject {
  if (buf.subarray(0, 4).toString('latin1') !== 'k8s\0') throw badRequest('error decoding body: no protobuf envelope');
  const message = (fields: Map<number, Array<number | Buffer>>, n: number) => {
    const v = fields.get(n)?.at(-1);
    return Buffer.isBuffer(v) ? protobufFields(v) : undefined;
  };
  const strings = (fields: Map<number, Array<number | Buffer>> | undefined, names: string[]) => {
    const out: Record<string, string> = {};
    names.forEach((name, i) => {
      const v = fields?.get(i + 1)?.at(-1);
      if (Buffer.isBuffer(v) && v.length > 0) out[name] = v.toString('utf8');
    });
    return out;
  };
  const unknown = protobufFields(buf.subarray(4));
  const typeMeta = strings(message(unknown, 1), ['apiVersion', 'kind']);
  const spec = message(message(unknown, 2) ?? new Map(), 2) ?? new Map<number, Array<number | Buffer>>();
  const resourceAttributes = message(spec, 1);
  const nonResourceAttributes = message(spec, 2);
  return {
    ...typeMeta,
    spec: {
      ...(resourceAttributes ? { resourceAttributes: strings(resourceAttributes, ['namespace', 'verb', 'group', 'version', 'resource', 'subresource', 'name']) } : {}),
      ...(nonResourceAttributes ? { nonResourceAttributes: strings(nonResourceAttributes, ['path', 'verb']) } : {}),
    },
  };
}

// ---------------------------------------------------------------------------------------
// Workloads and RBAC: defaults and validation as the registry strategies apply them

/** The defaults kube-apiserver gives a Deployment and its pod template (the ones a manifest usually leaves out). */
function defaultDeployment(object: KubeObject) {
  const spec = (isMap(object.spec) ? object.spec : (object.spec = {})) as Record<string, unknown>;
  spec.replicas ??= 1;
  spec.revisionHistoryLimit ??= 10;
  spec.progressDeadlineSeconds ??= 600;
  const strategy = (isMap(spec.strategy) ? spec.strategy : (spec.strategy = {})) as Record<string, unknown>;
  strategy.type ??= 'RollingUpdate';
  if (strategy.type === 'RollingUpdate') strategy.rollingUpdate ??= { maxUnavailable: '25%', maxSurge: '25%' };
  const template = isMap(spec.template) ? spec.template : undefined;
  const pod = template && isMap(template.spec) ? template.spec : undefined;
  if (!pod) return;
  pod.restartPolicy ??= 'Always';
  pod.terminationGracePeriodSeconds ??= 30;
  pod.dnsPolicy ??= 'ClusterFirst';
  pod.schedulerName ??= 'default-scheduler';
  pod.securityContext ??= {};
  for (const list of [pod.containers, pod.initContainers]) {
    if (!Array.isArray(list)) continue;
    for (const c of list.filter(isMap)) {
      const image = typeof c.image === 'string' ? c.image : '';
      c.imagePullPolicy ??= /:latest$/.test(image) || !/:[^/]+$/.test(image) ? 'Always' : 'IfNotPresent';
      c.terminationMessagePath ??= '/dev/termination-log';
      c.terminationMessagePolicy ??= 'File';
      if (Array.isArray(c.ports)) for (const port of c.ports.filter(isMap)) port.protocol ??= 'TCP';
      for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
        if (!isMap(probe)) continue;
        probe.timeoutSeconds ??= 1;
        probe.periodSeconds ??= 10;
        probe.successThreshold ??= 1;
        probe.failureThreshold ??= 3;
        if (isMap(probe.httpGet)) probe.httpGet.scheme ??= 'HTTP';
      }
    }
  }
}

function deploymentCauses(object: KubeObject): string[] {
  const spec = isMap(object.spec) ? object.spec : {};
  const causes: string[] = [];
  const selector = isMap(spec.selector) && isMap(spec.selector.matchLabels) ? (spec.selector.matchLabels as Record<string, string>) : undefined;
  const template = isMap(spec.template) ? spec.template : {};
  const labels = isMap(template.metadata) && isMap(template.metadata.labels) ? (template.metadata.labels as Record<string, string>) : {};
  if (!selector || Object.keys(selector).length === 0) causes.push('spec.selector: Required value');
  else if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) {
    causes.push(`spec.template.metadata.labels: Invalid value: ${JSON.stringify(labels)}: \`selector\` does not match template \`labels\``);
  }
  const pod = isMap(template.spec) ? template.spec : {};
  const containers = Array.isArray(pod.containers) ? pod.containers : [];
  if (containers.length === 0) causes.push('spec.template.spec.containers: Required value');
  containers.forEach((c, i) => {
    if (!isMap(c) || typeof c.name !== 'string' || !c.name) causes.push(`spec.template.spec.containers[${i}].name: Required value`);
    if (!isMap(c) || typeof c.image !== 'string' || !c.image) causes.push(`spec.template.spec.containers[${i}].image: Required value`);
  });
  return causes;
}

/** The rbac/validation rules that catch a broken manifest: verbs, apiGroups for resources, roleRef, subjects. */
function rbacCauses(r: ResourceType, object: KubeObject): string[] {
  const causes: string[] = [];
  if (r.kind === 'Role' || r.kind === 'ClusterRole') {
    const rules = object.rules === undefined || object.rules === null ? [] : object.rules;
    if (!Array.isArray(rules)) return ['rules: Invalid value: must be a list of PolicyRules'];
    rules.forEach((rule, i) => {
      if (!isMap(rule)) return void causes.push(`rules[${i}]: Invalid value: must be a PolicyRule`);
      const list = (key: string) => (Array.isArray(rule[key]) ? (rule[key] as unknown[]) : []);
      if (list('verbs').length === 0) causes.push(`rules[${i}].verbs: Required value: verbs must contain at least one value`);
      if (list('nonResourceURLs').length > 0) {
        if (r.kind === 'Role') causes.push(`rules[${i}].nonResourceURLs: Invalid value: ${JSON.stringify(rule.nonResourceURLs)}: namespaced rules cannot apply to non-resource URLs`);
        if (list('resources').length > 0 || list('apiGroups').length > 0) causes.push(`rules[${i}].nonResourceURLs: Invalid value: ${JSON.stringify(rule.nonResourceURLs)}: rules cannot apply to both regular resources and non-resource URLs`);
      } else {
        if (list('apiGroups').length === 0) causes.push(`rules[${i}].apiGroups: Required value: resource rules must supply at least one api group`);
        if (list('resources').length === 0) causes.push(`rules[${i}].resources: Required value: resource rules must supply at least one resource`);
      }
    });
    return causes;
  }
  const ref = isMap(object.roleRef) ? object.roleRef : undefined;
  const kinds = r.kind === 'RoleBinding' ? ['Role', 'ClusterRole'] : ['ClusterRole'];
  if (!ref) causes.push('roleRef: Required value');
  else {
    if (ref.apiGroup !== RBAC_GROUP) causes.push(`roleRef.apiGroup: Unsupported value: ${JSON.stringify(ref.apiGroup ?? '')}: supported values: "${RBAC_GROUP}"`);
    if (!kinds.includes(String(ref.kind))) causes.push(`roleRef.kind: Unsupported value: ${JSON.stringify(ref.kind ?? '')}: supported values: ${kinds.map((k) => `"${k}"`).join(', ')}`);
    if (typeof ref.name !== 'string' || !ref.name) causes.push('roleRef.name: Required value');
  }
  const subjects = Array.isArray(object.subjects) ? object.subjects : [];
  subjects.forEach((subject, i) => {
    if (!isMap(subject)) return void causes.push(`subjects[${i}]: Invalid value: must be a Subject`);
    if (typeof subject.name !== 'string' || !subject.name) causes.push(`subjects[${i}].name: Required value`);
    if (subject.kind === 'ServiceAccount') {
      if (r.kind === 'ClusterRoleBinding' && !subject.namespace) causes.push(`subjects[${i}].namespace: Required value`);
    } else if (subject.kind === 'User' || subject.kind === 'Group') {
      if (subject.apiGroup !== RBAC_GROUP) causes.push(`subjects[${i}].apiGroup: Unsupported value: ${JSON.stringify(subject.apiGroup ?? '')}: supported values: "${RBAC_GROUP}"`);
    } else causes.push(`subjects[${i}].kind: Unsupported value: ${JSON.stringify(subject.kind ?? '')}: supported values: "ServiceAccount", "User", "Group"`);
  });
  return causes;
}

// ---------------------------------------------------------------------------------------
// Authorization (the RBAC authorizer of kube-apiserver, over the stored objects)

/** Who makes a request: a `tokens` user. The admin (no token, or the `token` option's) is never authorized. */
interface UserInfo {
  name: string;
  groups: string[];
}

function userInfo(name: string): UserInfo {
  const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(name);
  return { name, groups: sa ? ['system:serviceaccounts', `system:serviceaccounts:${sa[1]}`, 'system:authenticated'] : ['system:authenticated'] };
}

/** What is asked: authorizer.Attributes. `namespace` '' is the cluster scope (or all namespaces). */
type Attributes =
  | { kind: 'resource'; verb: string; group: string; resource: string; subresource: string; name: string; namespace: string }
  | { kind: 'path'; verb: string; path: string };

/**
 * Non-resource paths and reviews every authenticated user may use, as kube-apiserver's
 * bootstrap ClusterRoles `system:discovery`, `system:public-info-viewer` and
 * `system:basic-user` (bound to `system:authenticated`) grant them.
 */
const PUBLIC_PATHS = ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/readyz', '/version', '/version/', '/openapi', '/openapi/*'];

function pathMatches(patterns: unknown[], path: string): boolean {
  return patterns.some((p) => typeof p === 'string' && (p === '*' || p === path || (p.endsWith('*') && path.startsWith(p.slice(0, -1)))));
}

/** rbac/validation's RuleAllows: verbs, then API groups, resources (`*`, `resource/sub`, or `*` + `/sub`) and names. */
function ruleAllows(a: Attributes, rule: Record<string, unknown>): boolean {
  const list = (key: string) => (Array.isArray(rule[key]) ? (rule[key] as unknown[]) : []);
  if (!list('verbs').some((v) => v === '*' || v === a.verb)) return false;
  if (a.kind === 'path') return pathMatches(list('nonResourceURLs'), a.path);
  if (!list('apiGroups').some((g) => g === '*' || g === a.group)) return false;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resourceOk = list('resources').some((res) => res === '*' || res === combined || (a.subresource !== '' && res === `*/${a.subresource}`));
  if (!resourceOk) return false;
  const names = list('resourceNames');
  return names.length === 0 || (a.name !== '' && names.includes(a.name));
}

function subjectAppliesTo(user: UserInfo, subject: unknown, bindingNamespace: string): boolean {
  if (!isMap(subject)) return false;
  if (subject.kind === 'User') return subject.name === user.name;
  if (subject.kind === 'Group') return typeof subject.name === 'string' && user.groups.includes(subject.name);
  if (subject.kind === 'ServiceAccount') {
    const namespace = typeof subject.namespace === 'string' && subject.namespace ? subject.namespace : bindingNamespace;
    return namespace !== '' && user.name === `system:serviceaccount:${namespace}:${String(subject.name)}`;
  }
  return false;
}

function describeSubject(subject: Record<string, unknown>, bindingNamespace: string): string {
  if (subject.kind === 'ServiceAccount') return `ServiceAccount "${String(subject.name)}/${String(subject.namespace || bindingNamespace)}"`;
  return `${String(subject.kind)} "${String(subject.name)}"`;
}

/** apiserver's forbiddenMessage + apierrors.NewForbidden, word for word. */
function forbidden(user: UserInfo, a: Attributes): ApiError {
  if (a.kind === 'path') return new ApiError(403, 'Forbidden', `forbidden: User "${user.name}" cannot ${a.verb} path "${a.path}"`, {});
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  const why = `User "${user.name}" cannot ${a.verb} resource "${resource}" in API group "${a.group}" ${scope}`;
  const qualifiedResource = a.group ? `${a.resource}.${a.group}` : a.resource;
  const message = a.name ? `${qualifiedResource} "${a.name}" is forbidden: ${why}` : `${qualifiedResource} is forbidden: ${why}`;
  return new ApiError(403, 'Forbidden', message, { ...(a.name ? { name: a.name } : {}), ...(a.group ? { group: a.group } : {}), kind: a.resource });
}

// ---------------------------------------------------------------------------------------
// Store, history and watches

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  rv: number;
  resource: ResourceType;
  type: EventType;
  object: KubeObject;
  /** The object before a MODIFIED or DELETED. */
  previous?: KubeObject;
}

interface Watcher {
  info: WatchInfo;
  resource: ResourceType;
  labels: Requirement[];
  fields: FieldRequirement[];
  res: ServerResponse;
  silent: boolean;
  /** Only events after this resourceVersion are sent (a watch from a future resourceVersion waits for it). */
  after: number;
  /** The client asked for `as=Table` (kubectl get -w): objects go out as one-row Tables. */
  table: boolean;
  timers: NodeJS.Timeout[];
}

interface Snapshot {
  rv: number;
  items: KubeObject[];
}

/** metav1.MicroTime fields: kube-apiserver parses them with RFC3339Micro, exactly six fractional digits. */
const MICRO_TIME_FIELDS: Record<string, string[][]> = {
  Lease: [
    ['spec', 'acquireTime'],
    ['spec', 'renewTime'],
  ],
  Event: [['eventTime'], ['series', 'lastObservedTime']],
};
const RFC3339_MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

/**
 * Rejects a MicroTime that is not RFC3339 with exactly six fractional digits, with the 400
 * kube-apiserver's decoder gives: a JavaScript `Date` serialises with three
 * (`toISOString()`), so a Lease renewed with `new Date()` fails on a real cluster; the
 * client's `V1MicroTime` serialises with six.
 */
function checkMicroTimes(r: ResourceType, object: KubeObject) {
  for (const path of MICRO_TIME_FIELDS[r.kind] ?? []) {
    let value: unknown = object;
    for (const part of path) value = isMap(value) ? value[part] : undefined;
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' || !RFC3339_MICRO.test(value)) {
      throw badRequest(
        `${r.kind} in version "${r.version}" cannot be handled as a ${r.kind}: parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05.000000Z07:00": ${path.join('.')} needs exactly six fractional digits`,
      );
    }
  }
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DEFAULT_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
const MAX_BODY = 3 * 1024 * 1024;

const timestamp = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;
const rid = (r: ResourceType) => `${r.group}/${r.plural}`;

/** Starts a test API server on 127.0.0.1; resolves once it listens. */
export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
  const historySize = options.historySize ?? 10_000;
  const initialResourceVersion = options.initialResourceVersion ?? 1;

  let rv = initialResourceVersion;
  /** Watches from a resourceVersion below this get 410: events at or below it are forgotten. */
  let floor = rv;
  const store = new Map<string, Map<string, KubeObject>>();
  let history: HistoryEvent[] = [];
  const watchers = new Set<Watcher>();
  const sockets = new Set<Socket>();
  const requests: RequestRecord[] = [];
  const watchWaiters = new Set<{ filter: (w: WatchInfo) => boolean; resolve: (w: WatchInfo) => void }>();
  const snapshots = new Map<string, Snapshot>();
  let nextClusterIp = 10;
  let nextNodePort = 30000;
  let listening = false;
  let closed = false;
  let port = options.port ?? 0;

  const table = (r: ResourceType) => {
    let t = store.get(rid(r));
    if (!t) store.set(rid(r), (t = new Map()));
    return t;
  };

  // --- events -------------------------------------------------------------------------

  function record(event: HistoryEvent) {
    history.push(event);
    if (history.length > historySize) {
      const dropped = history.splice(0, history.length - historySize);
      floor = dropped[dropped.length - 1]!.rv;
      for (const [token, snap] of snapshots) if (snap.rv < floor) snapshots.delete(token);
    }
    for (const w of watchers) if (w.resource === event.resource) deliver(w, event);
  }

  function matches(w: Watcher, object: KubeObject | undefined): boolean {
    if (!object) return false;
    if (w.info.namespace !== undefined && object.metadata?.namespace !== w.info.namespace) return false;
    return labelsMatch(w.labels, object.metadata?.labels) && fieldsMatch(w.fields, object);
  }

  /** kube-apiserver's cacheWatcher.convertToWatchEvent: selectors turn updates into ADDED/DELETED. */
  function deliver(w: Watcher, event: HistoryEvent) {
    if (event.rv <= w.after) return;
    const now = matches(w, event.object);
    const before = event.type === 'MODIFIED' && matches(w, event.previous);
    if (event.type === 'MODIFIED' && !now && before) {
      const old = withKind(event.resource, clone(event.previous!));
      old.metadata!.resourceVersion = String(event.rv);
      send(w, { type: 'DELETED', object: old });
      return;
    }
    if (!now) return;
    const type = event.type === 'MODIFIED' && !before ? 'ADDED' : event.type;
    send(w, { type, object: withKind(event.resource, event.object) });
  }

  function send(w: Watcher, event: { type: string; object: unknown }) {
    if (w.silent || w.res.writableEnded || w.res.destroyed) return;
    if (w.table && event.type !== 'ERROR' && event.type !== 'BOOKMARK') {
      const object = event.object as KubeObject;
      event = { type: event.type, object: asTable(w.resource, [object], { resourceVersion: object.metadata?.resourceVersion }) };
    }
    w.res.write(JSON.stringify(event) + '\n');
  }

  function endWatch(w: Watcher, graceful: boolean) {
    for (const timer of w.timers) clearTimeout(timer);
    w.timers = [];
    watchers.delete(w);
    if (graceful && !w.res.writableEnded) w.res.end();
  }

  // --- writes -------------------------------------------------------------------------

  function withKind(r: ResourceType, object: KubeObject): KubeObject {
    const { kind: _k, apiVersion: _a, ...rest } = object;
    return { kind: r.kind, apiVersion: groupVersion(r), ...rest };
  }

  function namespaceExists(namespace: string) {
    return table(NAMESPACES).has(keyOf(undefined, namespace));
  }

  /** Server-side defaults and field rules on create and update, as the registry strategies apply them. */
  function prepare(r: ResourceType, next: KubeObject, old: KubeObject | undefined) {
    if (r.kind === 'Service') {
      const spec = ((next.spec as Record<string, unknown> | undefined) ??= {});
      const oldSpec = (old?.spec as Record<string, unknown> | undefined) ?? {};
      spec.type ??= 'ClusterIP';
      if (spec.type !== 'ExternalName') {
        if (!spec.clusterIP && oldSpec.clusterIP) spec.clusterIP = oldSpec.clusterIP;
        if (!spec.clusterIP) {
          const n = nextClusterIp++;
          spec.clusterIP = `10.96.${(n >> 8) & 255}.${n & 255}`;
        }
        spec.clusterIPs = [spec.clusterIP];
        spec.ipFamilies ??= ['IPv4'];
        spec.ipFamilyPolicy ??= 'SingleStack';
        spec.internalTrafficPolicy ??= 'Cluster';
      }
      spec.sessionAffinity ??= 'None';
      if (Array.isArray(spec.ports)) {
        const oldPorts = Array.isArray(oldSpec.ports) ? (oldSpec.ports as Record<string, unknown>[]) : [];
        for (const p of spec.ports as Record<string, unknown>[]) {
          p.protocol ??= 'TCP';
          p.targetPort ??= p.port;
          if ((spec.type === 'NodePort' || spec.type === 'LoadBalancer') && p.nodePort === undefined) {
            p.nodePort = oldPorts.find((o) => o.port === p.port)?.nodePort ?? nextNodePort++;
          }
        }
      }
      next.status ??= { loadBalancer: {} };
    }
    if (r.kind === 'Secret') {
      next.type ??= 'Opaque';
      if (isMap(next.stringData)) {
        const data = (isMap(next.data) ? next.data : (next.data = {})) as Record<string, unknown>;
        for (const [k, v] of Object.entries(next.stringData)) data[k] = Buffer.from(String(v)).toString('base64');
        delete next.stringData;
      }
    }
    if (r.kind === 'Namespace') {
      next.spec ??= { finalizers: ['kubernetes'] };
      next.status ??= { phase: 'Active' };
    }
    if (r.kind === 'Deployment') defaultDeployment(next);
  }

  function validate(r: ResourceType, object: KubeObject) {
    checkMicroTimes(r, object);
    const meta = object.metadata!;
    const name = meta.name ?? '';
    const causes: string[] = [];
    if (!name) causes.push('metadata.name: Required value: name or generateName is required');
    else if (r.kind === 'Service' || r.kind === 'Namespace') {
      if (!DNS1035_LABEL.test(name) || name.length > 63)
        causes.push(`metadata.name: Invalid value: "${name}": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character`);
    } else if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253) {
      causes.push(`metadata.name: Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`);
    }
    for (const field of ['labels', 'annotations'] as const) {
      const map = meta[field];
      if (map === undefined || map === null) continue;
      if (!isMap(map)) {
        causes.push(`metadata.${field}: Invalid value: must be a map of strings`);
        continue;
      }
      for (const [k, v] of Object.entries(map)) {
        if (typeof v !== 'string') causes.push(`metadata.${field}: Invalid value: "${k}": must be a string`);
        else if (field === 'labels' && (v.length > 63 || !LABEL_VALUE.test(v))) causes.push(`metadata.labels: Invalid value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'`);
      }
    }
    if (r.kind === 'Deployment') causes.push(...deploymentCauses(object));
    if (r.group === RBAC_GROUP) causes.push(...rbacCauses(r, object));
    if (causes.length > 0) throw invalid(r, name, causes);
  }

  function create(r: ResourceType, body: KubeObject, namespace: string | undefined, opts: { dryRun?: boolean; fromTest?: boolean } = {}): KubeObject {
    const meta: ObjectMeta = { ...(isMap(body.metadata) ? (body.metadata as ObjectMeta) : {}) };
    if (!meta.name && meta.generateName) meta.name = meta.generateName + randomUUID().replace(/-/g, '').slice(0, 5);
    if (r.namespaced) meta.namespace = namespace;
    else delete meta.namespace;
    for (const field of ['uid', 'resourceVersion', 'creationTimestamp', 'generation', 'deletionTimestamp', 'selfLink', 'managedFields']) delete meta[field];
    const object: KubeObject = { ...clone(body), metadata: meta };
    if (r.statusSubresource && !opts.fromTest) delete object.status;
    validate(r, object);
    const name = meta.name!;
    if (r.namespaced && !namespaceExists(namespace!)) {
      if (opts.fromTest) create(NAMESPACES, { metadata: { name: namespace! } }, undefined, opts);
      else throw new ApiError(404, 'NotFound', `namespaces "${namespace}" not found`, { name: namespace, kind: 'namespaces' });
    }
    if (table(r).has(keyOf(namespace, name))) {
      throw new ApiError(409, 'AlreadyExists', `${qualified(r)} "${name}" already exists`, { name, ...(r.group ? { group: r.group } : {}), kind: r.plural });
    }
    prepare(r, object, undefined);
    const stored = withKind(r, object);
    stored.metadata = {
      ...meta,
      uid: randomUUID(),
      resourceVersion: opts.dryRun ? undefined : String(rv + 1),
      generation: 1,
      creationTimestamp: timestamp(),
    };
    if (opts.dryRun) return stored;
    rv++;
    table(r).set(keyOf(namespace, name), stored);
    record({ rv, resource: r, type: 'ADDED', object: stored });
    return clone(stored);
  }

  /** Stores `next` in place of `old`; `next` is the whole desired object. */
  function update(r: ResourceType, old: KubeObject, next: KubeObject, opts: { dryRun?: boolean; subresource?: string; fromTest?: boolean } = {}): KubeObject {
    const oldMeta = old.metadata!;
    const name = oldMeta.name!;
    let object: KubeObject;
    if (opts.subresource === 'status') {
      object = { ...clone(old), status: clone(next.status) };
    } else {
      object = clone(next);
      if (r.statusSubresource && !opts.fromTest) object.status = clone(old.status);
    }
    const meta: ObjectMeta = { ...(isMap(object.metadata) ? (object.metadata as ObjectMeta) : {}) };
    if (meta.uid !== undefined && meta.uid !== oldMeta.uid) {
      throw conflict(r, name, `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${oldMeta.uid}`);
    }
    object.metadata = { ...meta, name, namespace: oldMeta.namespace, uid: oldMeta.uid, creationTimestamp: oldMeta.creationTimestamp, resourceVersion: oldMeta.resourceVersion, generation: oldMeta.generation };
    if (!r.namespaced) delete object.metadata.namespace;
    delete object.metadata.managedFields;
    if ((r.kind === 'RoleBinding' || r.kind === 'ClusterRoleBinding') && !isDeepStrictEqual(object.roleRef, old.roleRef)) {
      throw invalid(r, name, [`roleRef: Invalid value: ${JSON.stringify(object.roleRef)}: cannot change roleRef`]);
    }
    validate(r, object);
    prepare(r, object, old);
    const stored = withKind(r, object);
    if (isDeepStrictEqual(stored, old)) return clone(old);
    const { metadata: _m1, status: _s1, ...restOld } = old;
    const { metadata: _m2, status: _s2, ...restNew } = stored;
    if (!isDeepStrictEqual(restOld, restNew)) stored.metadata!.generation = (oldMeta.generation ?? 0) + 1;
    if (opts.dryRun) return stored;
    rv++;
    stored.metadata!.resourceVersion = String(rv);
    table(r).set(keyOf(oldMeta.namespace, name), stored);
    record({ rv, resource: r, type: 'MODIFIED', object: stored, previous: old });
    return clone(stored);
  }

  function remove(r: ResourceType, namespace: string | undefined, name: string, opts: { dryRun?: boolean } = {}): KubeObject {
    const t = table(r);
    const old = t.get(keyOf(namespace, name));
    if (!old) throw notFound(r, name);
    if (opts.dryRun) return clone(old);
    rv++;
    const final = clone(old);
    final.metadata!.resourceVersion = String(rv);
    t.delete(keyOf(namespace, name));
    record({ rv, resource: r, type: 'DELETED', object: final, previous: old });
    return clone(final);
  }

  function currentObjects(r: ResourceType, namespace: string | undefined, labels: Requirement[] = [], fields: FieldRequirement[] = []): KubeObject[] {
    const items: Array<[string, KubeObject]> = [];
    for (const [key, object] of table(r)) {
      if (namespace !== undefined && object.metadata?.namespace !== namespace) continue;
      if (!labelsMatch(labels, object.metadata?.labels) || !fieldsMatch(fields, object)) continue;
      items.push([key, object]);
    }
    items.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return items.map(([, object]) => object);
  }

  function seed() {
    for (const name of options.namespaces ?? DEFAULT_NAMESPACES) create(NAMESPACES, { metadata: { name } }, undefined, { fromTest: true });
  }

  // --- authentication and authorization ------------------------------------------------

  /** The `tokens` user of a request; undefined for the admin. 401 for a token nobody has. */
  function authenticate(req: IncomingMessage): UserInfo | undefined {
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined && options.tokens && Object.prototype.hasOwnProperty.call(options.tokens, bearer)) return userInfo(options.tokens[bearer]!);
    if (options.token !== undefined && bearer !== options.token) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
    if (bearer !== undefined && options.token === undefined && options.tokens !== undefined) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
    return undefined;
  }

  /**
   * The RBAC authorizer: ClusterRoleBindings first, then the RoleBindings of the request's
   * namespace; the first rule that allows wins, with kube-apiserver's reason text. A binding
   * whose role does not exist is an error in the reason of a denial, as kube-apiserver words it.
   */
  function authorize(user: UserInfo, a: Attributes): { allowed: boolean; reason?: string } {
    if (a.kind === 'path' && a.verb === 'get' && pathMatches(PUBLIC_PATHS, a.path)) return { allowed: true, reason: '' };
    if (a.kind === 'resource' && a.group === 'authorization.k8s.io' && a.resource === 'selfsubjectaccessreviews' && a.verb === 'create') return { allowed: true, reason: '' };
    const errors: string[] = [];
    const rulesOf = (ref: Record<string, unknown>, namespace: string | undefined) => {
      const r = resourceByKind(String(ref.kind), `${RBAC_GROUP}/v1`);
      const role = table(r).get(keyOf(r.namespaced ? namespace : undefined, String(ref.name)));
      if (!role) {
        errors.push(`${r.singular}.${RBAC_GROUP} "${String(ref.name)}" not found`);
        return [];
      }
      return Array.isArray(role.rules) ? role.rules.filter(isMap) : [];
    };
    const bindings: Array<{ binding: KubeObject; namespace: string }> = [
      ...currentObjects(resourceByKind('ClusterRoleBinding'), undefined).map((binding) => ({ binding, namespace: '' })),
      ...(a.kind === 'resource' && a.namespace ? currentObjects(resourceByKind('RoleBinding'), a.namespace).map((binding) => ({ binding, namespace: a.namespace })) : []),
    ];
    for (const { binding, namespace } of bindings) {
      const subjects = Array.isArray(binding.subjects) ? binding.subjects : [];
      const subject = subjects.find((s) => subjectAppliesTo(user, s, namespace)) as Record<string, unknown> | undefined;
      const ref = binding.roleRef as Record<string, unknown>;
      if (!subject || !isMap(ref)) continue;
      if (!rulesOf(ref, namespace).some((rule) => ruleAllows(a, rule))) continue;
      const by = namespace
        ? `RoleBinding "${binding.metadata!.name}/${namespace}" of ${String(ref.kind)} "${String(ref.name)}" to ${describeSubject(subject, namespace)}`
        : `ClusterRoleBinding "${binding.metadata!.name}" of ${String(ref.kind)} "${String(ref.name)}" to ${describeSubject(subject, '')}`;
      return { allowed: true, reason: `RBAC: allowed by ${by}` };
    }
    if (errors.length === 0) return { allowed: false };
    return { allowed: false, reason: `RBAC: ${errors.length === 1 ? errors[0] : `[${errors.join(', ')}]`}` };
  }

  /** The attributes kube-apiserver's RequestInfoResolver finds in a routed request. */
  function attributesOf(method: string, rt: Route, watching: boolean): Attributes {
    const r = rt.resource;
    const name = rt.name ?? '';
    let verb: string;
    if (method === 'GET' || method === 'HEAD') verb = watching || rt.legacyWatch ? 'watch' : name ? 'get' : 'list';
    else if (method === 'POST') verb = 'create';
    else if (method === 'PUT') verb = 'update';
    else if (method === 'PATCH') verb = 'patch';
    else if (method === 'DELETE') verb = name ? 'delete' : 'deletecollection';
    else verb = method.toLowerCase();
    // A request on a namespace itself is in that namespace, as kube-apiserver resolves it.
    const namespace = r === NAMESPACES && name ? name : (rt.namespace ?? '');
    return { kind: 'resource', verb, group: r.group, resource: r.plural, subresource: rt.subresource ?? '', name, namespace };
  }

  /** POST of a SelfSubjectAccessReview: answered for the requester, never stored. */
  function selfSubjectAccessReview(r: ResourceType, body: KubeObject, user: UserInfo | undefined): KubeObject {
    const spec = isMap(body.spec) ? body.spec : {};
    const resourceAttributes = isMap(spec.resourceAttributes) ? spec.resourceAttributes : undefined;
    const nonResourceAttributes = isMap(spec.nonResourceAttributes) ? spec.nonResourceAttributes : undefined;
    if ((resourceAttributes === undefined) === (nonResourceAttributes === undefined)) {
      throw invalid(r, '', [`spec.resourceAttributes: Invalid value: ${JSON.stringify(spec)}: exactly one of nonResourceAttributes or resourceAttributes must be specified`]);
    }
    const text = (v: unknown) => (typeof v === 'string' ? v : '');
    const attributes: Attributes = resourceAttributes
      ? {
          kind: 'resource',
          verb: text(resourceAttributes.verb),
          group: text(resourceAttributes.group),
          resource: text(resourceAttributes.resource),
          subresource: text(resourceAttributes.subresource),
          name: text(resourceAttributes.name),
          namespace: text(resourceAttributes.namespace),
        }
      : { kind: 'path', verb: text(nonResourceAttributes!.verb), path: text(nonResourceAttributes!.path) };
    const decision = user ? authorize(user, attributes) : { allowed: true };
    return {
      kind: r.kind,
      apiVersion: groupVersion(r),
      metadata: {},
      spec: clone(spec),
      status: { allowed: decision.allowed, ...(decision.reason ? { reason: decision.reason } : {}) },
    };
  }

  // --- HTTP ---------------------------------------------------------------------------

  interface Route {
    resource: ResourceType;
    namespace: string | undefined;
    name: string | undefined;
    subresource: string | undefined;
    legacyWatch: boolean;
  }

  function route(pathname: string): Route | undefined {
    const segments = pathname.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let rest: string[];
    if (segments[0] === 'api' && segments[1] === 'v1') {
      group = '';
      rest = segments.slice(2);
    } else if (segments[0] === 'apis' && segments.length >= 3) {
      group = segments[1]!;
      if (segments[2] !== 'v1') return undefined;
      rest = segments.slice(3);
    } else return undefined;
    let legacyWatch = false;
    if (rest[0] === 'watch') {
      legacyWatch = true;
      rest = rest.slice(1);
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && RESOURCES.some((r) => r.group === group && r.namespaced && r.plural === rest[2])) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    if (rest.length < 1 || rest.length > 3) return undefined;
    const found = RESOURCES.find((r) => r.group === group && r.plural === rest[0]);
    if (!found) return undefined;
    if (!found.namespaced && namespace !== undefined) return undefined;
    if (found.namespaced && namespace === undefined && rest.length > 1) return undefined;
    const subresource = rest[2];
    if (subresource !== undefined && !(subresource === 'status' && found.statusSubresource)) return undefined;
    return { resource: found, namespace, name: rest[1], subresource, legacyWatch };
  }

  function sendJson(res: ServerResponse, code: number, body: unknown) {
    const data = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'cache-control': 'no-cache, private' });
    res.end(data);
  }

  /** The body as JSON; a protobuf body only for a SelfSubjectAccessReview (kubectl sends `auth can-i` so), else 415. */
  async function readBody(req: IncomingMessage, r?: ResourceType): Promise<unknown> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    const protobuf = type === 'application/vnd.kubernetes.protobuf';
    if ((protobuf && !(r && isReview(r))) || type === 'application/cbor') {
      throw new ApiError(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) throw new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
      chunks.push(chunk as Buffer);
    }
    if (protobuf) return selfSubjectAccessReviewFromProtobuf(Buffer.concat(chunks));
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text.trim()) return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw badRequest(`error decoding body: ${(err as Error).message}`);
    }
  }

  const requireObject = (body: unknown): KubeObject => {
    if (!isMap(body)) throw badRequest('the body of the request was in an unknown format - accepted media types include: application/json');
    return body as KubeObject;
  };

  function checkKind(r: ResourceType, body: KubeObject) {
    if (body.kind !== undefined && body.kind !== r.kind) throw badRequest(`the kind of the provided object (${String(body.kind)}) does not match the request (${r.kind})`);
    if (body.apiVersion !== undefined && body.apiVersion !== groupVersion(r)) {
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${groupVersion(r)})`);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse, entry: RequestRecord) {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const q = entry.query;
    const user = authenticate(req);
    entry.user = user?.name;
    const enforce = options.enforceRbac === true && user !== undefined;
    const method = req.method ?? 'GET';
    const rt = route(url.pathname);
    if (enforce) {
      const attributes = rt ? attributesOf(method, rt, entry.watch) : ({ kind: 'path', verb: method.toLowerCase(), path: url.pathname } as const);
      if (!authorize(user, attributes).allowed) throw forbidden(user, attributes);
    }
    if (method === 'GET' && discovery(url.pathname, res)) return;
    if (!rt) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    const r = rt.resource;
    const dryRun = q.dryRun === 'All';
    if (rt.legacyWatch && (method !== 'GET' || rt.name !== undefined)) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    if (isReview(r)) {
      if (method !== 'POST' || rt.name !== undefined || rt.legacyWatch) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      const body = requireObject(await readBody(req, r));
      checkKind(r, body);
      return sendJson(res, 201, selfSubjectAccessReview(r, body, user));
    }

    if (rt.name === undefined) {
      if (method === 'GET' && (entry.watch || rt.legacyWatch)) return watch(req, res, rt, q);
      if (method === 'GET') return list(req, res, rt, q);
      if (method === 'POST') {
        if (r.namespaced && rt.namespace === undefined) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        const body = requireObject(await readBody(req));
        checkKind(r, body);
        const bodyNs = body.metadata?.namespace;
        if (r.namespaced && bodyNs !== undefined && bodyNs !== '' && bodyNs !== rt.namespace) {
          throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
        }
        return sendJson(res, 201, create(r, body, rt.namespace, { dryRun }));
      }
      if (method === 'DELETE') {
        const labels = parseLabelSelector(q.labelSelector);
        const fields = parseFieldSelector(q.fieldSelector, r);
        const deleted = currentObjects(r, rt.namespace, labels, fields).map((o) => remove(r, o.metadata?.namespace, o.metadata!.name!, { dryRun }));
        return sendJson(res, 200, { kind: `${r.kind}List`, apiVersion: groupVersion(r), metadata: { resourceVersion: String(rv) }, items: deleted.map(stripKind) });
      }
      throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }

    const t = table(r);
    const existing = () => {
      const found = t.get(keyOf(rt.namespace, rt.name!));
      if (!found) throw notFound(r, rt.name!);
      return found;
    };
    switch (method) {
      case 'GET':
        return sendJson(res, 200, existing());
      case 'PUT': {
        const body = requireObject(await readBody(req));
        checkKind(r, body);
        const old = existing();
        if (body.metadata?.name !== undefined && body.metadata.name !== rt.name) {
          throw badRequest(`the name of the object (${body.metadata.name}) does not match the name on the URL (${rt.name})`);
        }
        const wanted = body.metadata?.resourceVersion;
        if (wanted !== undefined && wanted !== '' && wanted !== old.metadata!.resourceVersion) {
          throw conflict(r, rt.name, 'the object has been modified; please apply your changes to the latest version and try again');
        }
        return sendJson(res, 200, update(r, old, body, { dryRun, subresource: rt.subresource }));
      }
      case 'PATCH': {
        const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const body = await readBody(req);
        const old = existing();
        let patched: unknown;
        if (type === 'application/merge-patch+json') patched = mergePatch(old, requireObject(body));
        else if (type === 'application/strategic-merge-patch+json') patched = strategicMerge(r.kind, old, requireObject(body));
        else if (type === 'application/json-patch+json') patched = jsonPatch(r, rt.name, old, body);
        else throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
        const next = requireObject(patched);
        const wanted = next.metadata?.resourceVersion;
        if (wanted !== undefined && wanted !== old.metadata!.resourceVersion) {
          throw conflict(r, rt.name, 'the object has been modified; please apply your changes to the latest version and try again');
        }
        return sendJson(res, 200, update(r, old, next, { dryRun, subresource: rt.subresource }));
      }
      case 'DELETE': {
        const body = await readBody(req);
        const old = existing();
        const pre = isMap(body) && isMap(body.preconditions) ? body.preconditions : {};
        if (pre.uid !== undefined && pre.uid !== old.metadata!.uid) {
          throw conflict(r, rt.name, `Precondition failed: UID in precondition: ${String(pre.uid)}, UID in object meta: ${old.metadata!.uid}`);
        }
        if (pre.resourceVersion !== undefined && pre.resourceVersion !== old.metadata!.resourceVersion) {
          throw conflict(r, rt.name, `Precondition failed: ResourceVersion in precondition: ${String(pre.resourceVersion)}, ResourceVersion in object meta: ${old.metadata!.resourceVersion}`);
        }
        const final = remove(r, rt.namespace, rt.name, { dryRun });
        if (r.returnsDeletedObject) return sendJson(res, 200, final);
        return sendJson(res, 200, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: { name: rt.name, ...(r.group ? { group: r.group } : {}), kind: r.plural, uid: final.metadata!.uid },
        });
      }
      default:
        throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  function stripKind(object: KubeObject): KubeObject {
    const { kind: _k, apiVersion: _a, ...rest } = object;
    return rest;
  }

  function list(req: IncomingMessage, res: ServerResponse, rt: Route, q: Record<string, string>) {
    const r = rt.resource;
    const labels = parseLabelSelector(q.labelSelector);
    const fields = parseFieldSelector(q.fieldSelector, r);
    let snapshot: Snapshot | undefined;
    let snapshotId: string | undefined;
    let offset = 0;
    if (q.continue) {
      try {
        const token = JSON.parse(Buffer.from(q.continue, 'base64url').toString('utf8')) as { s?: unknown; o?: unknown };
        if (typeof token.s === 'string' && typeof token.o === 'number') {
          snapshotId = token.s;
          offset = token.o;
        }
      } catch {
        // reported below
      }
      if (snapshotId === undefined) throw badRequest('continue key is not valid');
      snapshot = snapshots.get(snapshotId);
      if (!snapshot) {
        throw expired('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      }
    } else {
      const asked = q.resourceVersion;
      if (asked !== undefined && asked !== '' && asked !== '0') {
        const n = Number(asked);
        if (!Number.isInteger(n) || n < 0) throw badRequest(`resourceVersion: Invalid value: "${asked}": must be a non-negative integer`);
        if (n > rv) {
          throw new ApiError(504, 'Timeout', `Too large resource version: ${n}, current: ${rv}`, {
            causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
            retryAfterSeconds: 1,
          });
        }
        if (q.resourceVersionMatch === 'Exact' && n !== rv) throw expired(`too old resource version: ${n} (${rv})`);
      }
      snapshot = { rv, items: currentObjects(r, rt.namespace, labels, fields) };
    }
    const limit = Number(q.limit);
    let items = snapshot.items.slice(offset);
    const metadata: Record<string, unknown> = { resourceVersion: String(snapshot.rv) };
    if (Number.isInteger(limit) && limit > 0 && items.length > limit) {
      items = items.slice(0, limit);
      if (snapshotId === undefined) {
        snapshotId = randomUUID();
        snapshots.set(snapshotId, snapshot);
        if (snapshots.size > 64) snapshots.delete(snapshots.keys().next().value!);
      }
      metadata.continue = Buffer.from(JSON.stringify({ s: snapshotId, o: offset + limit })).toString('base64url');
      if (labels.length === 0 && fields.length === 0) metadata.remainingItemCount = snapshot.items.length - offset - limit;
    }
    const accept = req.headers.accept ?? '';
    if (/as=Table/.test(accept)) return sendJson(res, 200, asTable(r, items, metadata));
    sendJson(res, 200, { kind: `${r.kind}List`, apiVersion: groupVersion(r), metadata, items: items.map(stripKind) });
  }

  function watch(req: IncomingMessage, res: ServerResponse, rt: Route, q: Record<string, string>) {
    const r = rt.resource;
    const labels = parseLabelSelector(q.labelSelector);
    const fields = parseFieldSelector(q.fieldSelector, r);
    const asked = q.resourceVersion;
    const from = asked === undefined || asked === '' || asked === '0' ? undefined : Number(asked);
    if (from !== undefined && (!Number.isInteger(from) || from < 0)) throw badRequest(`resourceVersion: Invalid value: "${asked}": must be a non-negative integer`);
    const timeoutSeconds = q.timeoutSeconds !== undefined ? Number(q.timeoutSeconds) : options.defaultWatchTimeoutSeconds;
    const info: WatchInfo = {
      path: new URL(req.url ?? '/', 'http://localhost').pathname,
      resource: r.plural,
      group: r.group,
      namespace: rt.namespace,
      resourceVersion: asked,
      labelSelector: q.labelSelector,
      fieldSelector: q.fieldSelector,
      allowWatchBookmarks: q.allowWatchBookmarks === 'true' || q.allowWatchBookmarks === '1',
      timeoutSeconds,
    };
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const w: Watcher = { info, resource: r, labels, fields, res, silent: false, after: from ?? rv, table: /as=Table/.test(req.headers.accept ?? ''), timers: [] };
    if (from !== undefined && from < floor) {
      send(w, { type: 'ERROR', object: expired(`too old resource version: ${from} (${floor})`).status });
      res.end();
      return;
    }
    if (from === undefined) {
      for (const object of currentObjects(r, rt.namespace, labels, fields)) send(w, { type: 'ADDED', object });
      if (q.sendInitialEvents === 'true') {
        send(w, { type: 'BOOKMARK', object: { kind: r.kind, apiVersion: groupVersion(r), metadata: { resourceVersion: String(rv), annotations: { 'k8s.io/initial-events-end': 'true' } } } });
      }
    } else {
      for (const event of history) if (event.rv > from && event.resource === r) deliver(w, event);
    }
    watchers.add(w);
    res.on('close', () => endWatch(w, false));
    if (info.allowWatchBookmarks) {
      const tick = () => {
        if (w.silent || !watchers.has(w)) return;
        send(w, { type: 'BOOKMARK', object: { kind: r.kind, apiVersion: groupVersion(r), metadata: { resourceVersion: String(rv) } } });
        w.timers.push(setTimeout(tick, bookmarkIntervalMs));
      };
      w.timers.push(setTimeout(tick, bookmarkIntervalMs));
    }
    if (timeoutSeconds !== undefined && Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
      w.timers.push(setTimeout(() => endWatch(w, true), timeoutSeconds * 1000));
    }
    for (const waiter of watchWaiters) {
      if (waiter.filter(info)) {
        watchWaiters.delete(waiter);
        waiter.resolve(info);
      }
    }
  }

  function asTable(r: ResourceType, items: KubeObject[], metadata: Record<string, unknown>) {
    const age = (o: KubeObject) => {
      const created = Date.parse(o.metadata?.creationTimestamp ?? '');
      const s = Number.isNaN(created) ? 0 : Math.max(0, Math.floor((Date.now() - created) / 1000));
      return s < 120 ? `${s}s` : s < 7200 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
    };
    const columns: Array<{ name: string; cell: (o: KubeObject) => string }> = [{ name: 'Name', cell: (o) => o.metadata?.name ?? '' }];
    if (r.kind === 'Service') {
      const spec = (o: KubeObject) => (o.spec ?? {}) as Record<string, unknown>;
      columns.push(
        { name: 'Type', cell: (o) => String(spec(o).type ?? '') },
        { name: 'Cluster-IP', cell: (o) => String(spec(o).clusterIP ?? '<none>') },
        { name: 'External-IP', cell: (o) => (Array.isArray(spec(o).externalIPs) ? (spec(o).externalIPs as string[]).join(',') : '<none>') },
        {
          name: 'Port(s)',
          cell: (o) =>
            Array.isArray(spec(o).ports)
              ? (spec(o).ports as Array<Record<string, unknown>>).map((p) => `${String(p.port)}${p.nodePort ? ':' + String(p.nodePort) : ''}/${String(p.protocol ?? 'TCP')}`).join(',')
              : '<none>',
        },
      );
    }
    columns.push({ name: 'Age', cell: age });
    return {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      metadata,
      columnDefinitions: columns.map((c) => ({ name: c.name, type: 'string', format: c.name === 'Name' ? 'name' : '', description: '', priority: 0 })),
      rows: items.map((o) => ({
        cells: columns.map((c) => c.cell(o)),
        object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
      })),
    };
  }

  /**
   * A minimal OpenAPI v3 document for one group version: only each resource's PATCH
   * operation, tagged with its group/version/kind and its query parameters. That is what
   * kubectl reads to learn that the server validates fields itself (`fieldValidation`);
   * without it kubectl refuses to apply unless `--validate=false`. No schemas: kubectl
   * then computes apply patches from its built-in types, and this server does not reject
   * unknown fields even under `fieldValidation=Strict`.
   */
  function openApiV3(group: string) {
    const paths: Record<string, unknown> = {};
    for (const r of RESOURCES.filter((x) => x.group === group && x.verbs.includes('patch'))) {
      const prefix = group ? `/apis/${group}/v1` : '/api/v1';
      const path = r.namespaced ? `${prefix}/namespaces/{namespace}/${r.plural}/{name}` : `${prefix}/${r.plural}/{name}`;
      paths[path] = {
        patch: {
          operationId: `patch${r.namespaced ? 'Namespaced' : ''}${r.kind}`,
          'x-kubernetes-action': 'patch',
          'x-kubernetes-group-version-kind': { group, version: 'v1', kind: r.kind },
          parameters: ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((name) => ({ name, in: 'query', schema: { type: name === 'force' ? 'boolean' : 'string' } })),
          responses: { '200': { description: 'OK' } },
        },
      };
    }
    return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.0-fairway-test' }, paths, components: { schemas: {} } };
  }

  function discovery(pathname: string, res: ServerResponse): boolean {
    const path = pathname.replace(/\/+$/, '') || '/';
    const groups = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];
    const resourceList = (group: string) => {
      const resources = RESOURCES.filter((r) => r.group === group);
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: group ? `${group}/v1` : 'v1',
        resources: resources.flatMap((r) => [
          { name: r.plural, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: r.verbs, ...(r.shortNames.length ? { shortNames: r.shortNames } : {}) },
          ...(r.statusSubresource ? [{ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] }] : []),
        ]),
      };
    };
    let body: unknown;
    if (path === '/version') {
      body = { major: '1', minor: '32', gitVersion: 'v1.32.0-fairway-test', gitCommit: '', gitTreeState: 'clean', buildDate: '2025-01-01T00:00:00Z', goVersion: 'go1.23', compiler: 'gc', platform: 'linux/amd64' };
    } else if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
      return true;
    } else if (path === '/api') {
      body = { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }] };
    } else if (path === '/apis') {
      body = {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: groups.map((name) => ({ name, versions: [{ groupVersion: `${name}/v1`, version: 'v1' }], preferredVersion: { groupVersion: `${name}/v1`, version: 'v1' } })),
      };
    } else if (path === '/api/v1') {
      body = resourceList('');
    } else if (path === '/openapi/v2') {
      // kubectl reads v2 only as protobuf (gnostic openapi_v2.Document): swagger = 1, info = 2 {title = 1, version = 2}.
      const field = (n: number, value: Buffer) => Buffer.concat([Buffer.from([(n << 3) | 2, value.length]), value]);
      const info = Buffer.concat([field(1, Buffer.from('Kubernetes')), field(2, Buffer.from('v1.32.0-fairway-test'))]);
      const doc = Buffer.concat([field(1, Buffer.from('2.0')), field(2, info)]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': doc.length }).end(doc);
      return true;
    } else if (path === '/openapi/v3') {
      body = {
        paths: Object.fromEntries(['', ...groups].map((g) => [g ? `apis/${g}/v1` : 'api/v1', { serverRelativeURL: `/openapi/v3/${g ? `apis/${g}/v1` : 'api/v1'}?hash=fairway-test` }])),
      };
    } else if (path === '/openapi/v3/api/v1' || /^\/openapi\/v3\/apis\/[^/]+\/v1$/.test(path)) {
      const group = path === '/openapi/v3/api/v1' ? '' : path.split('/')[4]!;
      if (group && !groups.includes(group)) return false;
      body = openApiV3(group);
    } else {
      const m = /^\/apis\/([^/]+)(?:\/(v1))?$/.exec(path);
      if (!m || !groups.includes(m[1]!)) return false;
      body = m[2]
        ? resourceList(m[1]!)
        : { kind: 'APIGroup', apiVersion: 'v1', name: m[1], versions: [{ groupVersion: `${m[1]}/v1`, version: 'v1' }], preferredVersion: { groupVersion: `${m[1]}/v1`, version: 'v1' } };
    }
    sendJson(res, 200, body);
    return true;
  }

  const listener: RequestListener = (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const entry: RequestRecord = { method: req.method ?? 'GET', path: url.pathname, query, watch: query.watch === 'true' || query.watch === '1' || url.pathname.includes('/watch/'), user: undefined };
    Object.defineProperty(entry, 'status', { enumerable: true, get: () => (res.headersSent ? res.statusCode : undefined) });
    requests.push(entry);
    handle(req, res, entry).catch((err: unknown) => {
      if (res.headersSent || res.destroyed || req.socket.destroyed) {
        res.destroy();
        return;
      }
      const status = err instanceof ApiError ? err.status : new ApiError(500, 'InternalError', `Internal error occurred: ${(err as Error).stack ?? String(err)}`).status;
      sendJson(res, status.code, status);
    });
  };
  let server: Server;
  if (options.tls) {
    const { generateSelfSigned } = await import('../../src/tls/self-signed.js');
    const { certPem, keyPem } = await generateSelfSigned({ names: ['localhost', 'kubernetes.default.svc'] });
    server = createTlsServer({ cert: certPem, key: keyPem }, listener) as unknown as Server;
  } else server = createServer(listener);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function listen() {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as AddressInfo).port;
    listening = true;
  }

  function resetSockets() {
    for (const socket of sockets) socket.resetAndDestroy();
    sockets.clear();
  }

  async function stop() {
    if (!listening) return;
    listening = false;
    const closedPromise = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const w of [...watchers]) endWatch(w, false);
    resetSockets();
    await closedPromise;
  }

  seed();
  floor = rv;
  for (const object of options.objects ?? []) applyObject(object);
  await listen();

  function applyObject(object: KubeObject): KubeObject {
    if (!object.kind) throw new Error('kube-api-server: apply needs a kind');
    const r = resourceByKind(object.kind, object.apiVersion);
    const namespace = r.namespaced ? (object.metadata?.namespace ?? 'default') : undefined;
    const name = object.metadata?.name;
    const old = name === undefined ? undefined : table(r).get(keyOf(namespace, name));
    if (!old) return create(r, object, namespace, { fromTest: true });
    const { resourceVersion: _rv, ...meta } = object.metadata ?? {};
    return update(r, old, { ...object, metadata: meta }, { fromTest: true });
  }

  const api: KubeApiServer = {
    get url() {
      return `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get resourceVersion() {
      return String(rv);
    },
    requests,
    get activeWatches() {
      return [...watchers].map((w) => w.info);
    },
    kubeConfig(opts = {}) {
      const token = opts.token ?? options.token;
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'test', server: api.url, skipTLSVerify: true }],
        users: [{ name: 'test', ...(token !== undefined ? { token } : {}) }],
        contexts: [{ name: 'test', cluster: 'test', user: 'test', namespace: opts.namespace ?? 'default' }],
        currentContext: 'test',
      });
      return kc;
    },
    kubeconfigYaml(opts = {}) {
      const token = opts.token ?? options.token;
      return [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: test',
        '  cluster:',
        `    server: ${api.url}`,
        '    insecure-skip-tls-verify: true',
        'users:',
        '- name: test',
        `  user: ${token !== undefined ? `{token: ${JSON.stringify(token)}}` : '{}'}`,
        'contexts:',
        '- name: test',
        `  context: {cluster: test, user: test, namespace: ${JSON.stringify(opts.namespace ?? 'default')}}`,
        'current-context: test',
        '',
      ].join('\n');
    },
    async writeKubeconfig(path, opts) {
      await writeFile(path, api.kubeconfigYaml(opts), { mode: 0o600 });
    },
    apply: applyObject,
    remove(kind, namespace, name) {
      const r = resourceByKind(kind);
      if (!table(r).has(keyOf(r.namespaced ? namespace : undefined, name))) return false;
      remove(r, r.namespaced ? namespace : undefined, name);
      return true;
    },
    get(kind, namespace, name) {
      const r = resourceByKind(kind);
      const found = table(r).get(keyOf(r.namespaced ? namespace : undefined, name));
      return found ? clone(found) : undefined;
    },
    list(kind, namespace) {
      return currentObjects(resourceByKind(kind), namespace).map(clone);
    },
    waitForWatch(filter = () => true, timeoutMs = 10_000) {
      return new Promise<WatchInfo>((resolve, reject) => {
        const waiter = {
          filter,
          resolve: (w: WatchInfo) => {
            clearTimeout(timer);
            resolve(w);
          },
        };
        const timer = setTimeout(() => {
          watchWaiters.delete(waiter);
          reject(new Error(`kube-api-server: no matching watch within ${timeoutMs} ms; open: ${JSON.stringify(api.activeWatches)}`));
        }, timeoutMs);
        watchWaiters.add(waiter);
      });
    },
    dropWatches() {
      for (const w of [...watchers]) endWatch(w, true);
    },
    resetConnections() {
      for (const w of [...watchers]) endWatch(w, false);
      resetSockets();
    },
    compact() {
      history = [];
      floor = rv;
      snapshots.clear();
    },
    silenceWatches() {
      for (const w of watchers) {
        w.silent = true;
        for (const timer of w.timers) clearTimeout(timer);
        w.timers = [];
      }
    },
    stop,
    async start() {
      if (closed) throw new Error('kube-api-server: closed');
      if (!listening) await listen();
    },
    async restartFresh(opts = {}) {
      await stop();
      store.clear();
      history = [];
      snapshots.clear();
      rv = opts.resourceVersion ?? initialResourceVersion;
      seed();
      floor = rv;
      await api.start();
    },
    async close() {
      if (closed) return;
      await stop();
      closed = true;
    },
  };
  return api;
}
