// File: tests/deploy/validate.mjs — checks rendered Kubernetes manifests.
//
// Usage: node validate.mjs RULES_FILE NAME=MANIFEST.yaml [NAME=MANIFEST.yaml ...]
//   RULES_FILE: deploy/prometheus/alerts.yml (the PrometheusRule must carry the same groups)
//   each MANIFEST: a multi-document YAML (e.g. `kubectl kustomize deploy/overlays/cpu`)
//
// 1. Schema: every built-in object is validated with kubernetes-models (wrong types,
//    missing required fields).
// 2. What the schema does not catch (our policy): every container has a real image;
//    liveness/readiness (and startup) probes; cpu+memory requests and limits; non-root,
//    read-only root filesystem (init containers: no probes needed), no privilege escalation, all capabilities dropped,
//    seccomp RuntimeDefault; ports in range; probes and Services point at declared
//    ports; selectors of Services, PDBs, NetworkPolicies, ServiceMonitors match
//    something; $(VAR) in args is defined by the referenced ConfigMap; the
//    PrometheusRule equals the plain rules file.
// 3. KServe (serving.kserve.io, not in kubernetes-models): the ServingRuntime /
//    ClusterServingRuntime and InferenceService fields we use are checked against a small
//    schema here (known keys, types, grpc-v2, a first port named h2c); the pod KServe would
//    make from runtime + InferenceService is then validated as a Pod with the schema and
//    the policy checks above (probes, limits, non-root, mounts have volumes, ...).
// 4. Grafana dashboard ConfigMaps (label grafana_dashboard: "1"): every data entry is a
//    dashboard JSON whose panels query the templated Prometheus data source.
// 5. KEDA (keda.sh/v1alpha1 ScaledObject, TriggerAuthentication): the schemas of npm
//    @kubernetes-models/keda (types and required fields, as for built-in kinds); a
//    ScaledObject's target and authenticationRef must be in the manifests.
// 6. CloudNativePG (postgresql.cnpg.io/v1 Cluster; no offline schema package exists): the
//    fields we use are checked against a small schema here (known keys, types); the
//    Cluster counts as pods labelled cnpg.io/cluster=<name> for selectors. The full CRD
//    schema is NOT validated.
// 7. NetworkPolicy ingress `from` pod selectors (same namespace) match a pod template.
// Exit 0 when all pass; prints one line per problem and exits 1 otherwise.
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments, parse } from "yaml";

const [rulesFile, ...inputs] = process.argv.slice(2);
if (!rulesFile || inputs.length === 0) {
  console.error("usage: node validate.mjs RULES_FILE NAME=MANIFEST.yaml...");
  process.exit(2);
}
const problems = [];
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);
// Kinds we accept without a kubernetes-models schema; they get structural checks here.
const CRDS = new Set(["monitoring.coreos.com/v1:ServiceMonitor", "monitoring.coreos.com/v1:PrometheusRule",
  "serving.kserve.io/v1alpha1:ServingRuntime", "serving.kserve.io/v1alpha1:ClusterServingRuntime",
  "serving.kserve.io/v1beta1:InferenceService", "postgresql.cnpg.io/v1:Cluster"]);
// CRD groups whose schemas come from an npm package of their own.
const SCHEMA_PACKAGES = { "keda.sh": "@kubernetes-models/keda/keda.sh" };
const RUNTIMES = new Set(["ServingRuntime", "ClusterServingRuntime"]);

async function schemaCheck(where, obj) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : [null, obj.apiVersion];
  const path = SCHEMA_PACKAGES[group] ? `${SCHEMA_PACKAGES[group]}/${version}/${obj.kind}`
    : `kubernetes-models/${group ? `${group}/` : ""}${version}/${obj.kind}`;
  let Model;
  try {
    ({ [obj.kind]: Model } = await import(path));
  } catch {
    problems.push(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
    return;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${where}: schema: ${e.message.split("\n").slice(0, 6).join(" | ")}`);
  }
}

const matches = (selector, labels) =>
  selector && Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);
// A full LabelSelector (matchLabels + matchExpressions); an empty one matches everything.
function selects(selector, labels) {
  const ml = selector?.matchLabels ?? {};
  if (!Object.entries(ml).every(([k, v]) => labels?.[k] === v)) return false;
  return (selector?.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    const has = labels && Object.hasOwn(labels, key);
    switch (operator) {
      case "In": return has && values.includes(labels[key]);
      case "NotIn": return !has || !values.includes(labels[key]);
      case "Exists": return has;
      case "DoesNotExist": return !has;
      default: return false;
    }
  });
}

function checkContainer(where, c, kind, configMaps, envFromNames, isInit) {
  const at = `${where} container ${c.name}`;
  if (!c.image || typeof c.image !== "string" || !/[/:@]/.test(c.image)) {
    problems.push(`${at}: image '${c.image ?? ""}' is missing or a bare placeholder (set it in the overlay)`);
  }
  if (kind !== "Job" && !isInit) {
    if (!c.livenessProbe) problems.push(`${at}: no livenessProbe`);
    if (!c.readinessProbe) problems.push(`${at}: no readinessProbe`);
  }
  for (const res of ["cpu", "memory"]) {
    if (!c.resources?.requests?.[res]) problems.push(`${at}: no resources.requests.${res}`);
    if (!c.resources?.limits?.[res]) problems.push(`${at}: no resources.limits.${res}`);
  }
  const sc = c.securityContext ?? {};
  if (sc.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem is not true`);
  if (sc.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
  if (sc.privileged === true) problems.push(`${at}: privileged`);
  if (!(sc.capabilities?.drop ?? []).includes("ALL")) problems.push(`${at}: capabilities.drop lacks ALL`);
  const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
  for (const p of c.ports ?? []) {
    if (!(p.containerPort >= 1 && p.containerPort <= 65535)) problems.push(`${at}: containerPort ${p.containerPort} out of range`);
  }
  const declared = new Set([...ports.values()]);
  for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
    const pr = c[probe];
    if (!pr) continue;
    const port = pr.grpc?.port ?? pr.httpGet?.port ?? pr.tcpSocket?.port;
    if (port === undefined && !pr.exec) problems.push(`${at}: ${probe} has no handler`);
    if (typeof port === "number" && !declared.has(port)) problems.push(`${at}: ${probe} port ${port} is not a containerPort`);
    if (typeof port === "string" && !ports.has(port)) problems.push(`${at}: ${probe} port '${port}' is not a named port`);
  }
  // $(VAR) references must resolve from env or an envFrom ConfigMap that exists.
  const env = new Set((c.env ?? []).map((e) => e.name));
  for (const name of envFromNames) {
    const cm = configMaps.get(name);
    if (!cm) problems.push(`${at}: envFrom ConfigMap ${name} is not in the manifests`);
    for (const k of Object.keys(cm?.data ?? {})) env.add(k);
  }
  for (const arg of [...(c.args ?? []), ...(c.command ?? [])]) {
    for (const m of String(arg).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
      if (!env.has(m[1])) problems.push(`${at}: '${arg}' uses $(${m[1]}), which nothing defines`);
    }
  }
  return ports;
}

function checkPodSpec(where, kind, spec, configMaps) {
  const pod = spec.securityContext ?? {};
  const inits = new Set(spec.initContainers ?? []);
  const containers = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
  if (containers.length === 0) problems.push(`${where}: no containers`);
  const named = new Map();
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    const nonRoot = sc.runAsNonRoot ?? pod.runAsNonRoot;
    const uid = sc.runAsUser ?? pod.runAsUser;
    if (nonRoot !== true) problems.push(`${where} container ${c.name}: runAsNonRoot is not true`);
    if (uid === 0) problems.push(`${where} container ${c.name}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp !== "RuntimeDefault" && seccomp !== "Localhost") problems.push(`${where} container ${c.name}: seccompProfile is not RuntimeDefault`);
    const envFrom = (c.envFrom ?? []).filter((e) => e.configMapRef && e.configMapRef.optional !== true).map((e) => e.configMapRef.name);
    for (const [n, p] of checkContainer(where, c, kind, configMaps, envFrom, inits.has(c))) named.set(n, p);
  }
  const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
  return { named, volumes };
}

// --- KServe: a schema of the fields we use (serving.kserve.io v1alpha1 / v1beta1) --------
const RUNTIME_SPEC_KEYS = new Set(["supportedModelFormats", "multiModel", "disabled", "protocolVersions",
  "workerSpec", "containers", "volumes", "nodeSelector", "affinity", "tolerations", "labels", "annotations",
  "imagePullSecrets", "hostIPC", "grpcEndpoint", "grpcDataEndpoint", "httpDataEndpoint", "replicas",
  "storageHelper", "builtInAdapter"]);
const MODEL_FORMAT_KEYS = new Set(["name", "version", "autoSelect", "priority"]);
const PROTOCOLS = new Set(["v1", "v2", "grpc-v1", "grpc-v2"]);
// PredictorSpec = PodSpec (inline) + ComponentExtensionSpec + model/framework specs.
const COMPONENT_EXTENSION_KEYS = new Set(["minReplicas", "maxReplicas", "scaleTarget", "scaleMetric",
  "scaleMetricType", "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher",
  "labels", "annotations", "deploymentStrategy", "autoScaling"]);
const MODEL_KEYS = new Set(["modelFormat", "runtime", "protocolVersion", "storageUri", "storage"]);
const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const unknownKeys = (obj, known) => Object.keys(obj ?? {}).filter((k) => !known.has(k));

function checkRuntime(where, o) {
  const spec = o.spec ?? {};
  for (const k of unknownKeys(spec, RUNTIME_SPEC_KEYS)) problems.push(`${where}: spec.${k} is not a ServingRuntime field`);
  if (!Array.isArray(spec.supportedModelFormats) || spec.supportedModelFormats.length === 0) {
    problems.push(`${where}: spec.supportedModelFormats is empty`);
  }
  for (const [i, f] of (spec.supportedModelFormats ?? []).entries()) {
    if (!isMap(f) || typeof f.name !== "string" || !f.name) problems.push(`${where}: supportedModelFormats[${i}].name missing`);
    for (const k of unknownKeys(f, MODEL_FORMAT_KEYS)) problems.push(`${where}: supportedModelFormats[${i}].${k} is not a field`);
    if (f?.version !== undefined && typeof f.version !== "string") problems.push(`${where}: supportedModelFormats[${i}].version must be a string`);
    if (f?.autoSelect !== undefined && typeof f.autoSelect !== "boolean") problems.push(`${where}: supportedModelFormats[${i}].autoSelect must be a boolean`);
  }
  for (const p of spec.protocolVersions ?? []) if (!PROTOCOLS.has(p)) problems.push(`${where}: protocolVersions: unknown '${p}'`);
  if (!(spec.protocolVersions ?? []).includes("grpc-v2")) problems.push(`${where}: protocolVersions lacks grpc-v2 (segserve speaks the OIP over gRPC)`);
  for (const k of ["multiModel", "disabled", "hostIPC"]) {
    if (spec[k] !== undefined && typeof spec[k] !== "boolean") problems.push(`${where}: spec.${k} must be a boolean`);
  }
  for (const k of ["labels", "annotations", "nodeSelector"]) {
    if (spec[k] !== undefined && (!isMap(spec[k]) || Object.values(spec[k]).some((v) => typeof v !== "string"))) {
      problems.push(`${where}: spec.${k} must map strings to strings`);
    }
  }
  const main = (spec.containers ?? []).find((c) => c.name === "kserve-container");
  if (!main) problems.push(`${where}: no container named kserve-container (KServe merges the model container into it)`);
  else if (main.ports?.[0]?.name !== "h2c") problems.push(`${where}: the first port of kserve-container must be named h2c (gRPC), is '${main.ports?.[0]?.name ?? ""}'`);
}

// The pod KServe makes for a predictor: runtime containers with the InferenceService's
// model container merged into kserve-container (list fields by their key), runtime volumes
// plus the predictor's, the predictor's pod fields.
function predictorPod(runtime, predictor) {
  const pod = {};
  for (const [k, v] of Object.entries(predictor)) {
    if (!COMPONENT_EXTENSION_KEYS.has(k) && k !== "model") pod[k] = v;
  }
  const model = Object.fromEntries(Object.entries(predictor.model ?? {}).filter(([k]) => !MODEL_KEYS.has(k)));
  const mergeBy = (a = [], b = [], key) => [...a.filter((x) => !b.some((y) => y[key] === x[key])), ...b];
  const deepMerge = (a, b) => {
    if (!isMap(a) || !isMap(b)) return b === undefined ? a : b;
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = deepMerge(a[k], v);
    return out;
  };
  pod.containers = (runtime.spec?.containers ?? []).map((c) => c.name !== "kserve-container" ? c : {
    ...deepMerge(c, model),
    env: mergeBy(c.env, model.env, "name"),
    volumeMounts: mergeBy(c.volumeMounts, model.volumeMounts, "mountPath"),
    ports: c.ports,
  });
  pod.volumes = mergeBy(runtime.spec?.volumes, predictor.volumes, "name");
  for (const k of ["nodeSelector", "affinity", "tolerations", "imagePullSecrets"]) {
    if (runtime.spec?.[k] !== undefined && pod[k] === undefined) pod[k] = runtime.spec[k];
  }
  return pod;
}

async function checkInferenceService(where, o, objs, configMaps) {
  const predictor = o.spec?.predictor;
  if (!isMap(predictor)) { problems.push(`${where}: no spec.predictor`); return; }
  const model = predictor.model;
  if (!isMap(model)) { problems.push(`${where}: no spec.predictor.model`); return; }
  if (typeof model.modelFormat?.name !== "string") problems.push(`${where}: predictor.model.modelFormat.name missing`);
  for (const k of ["minReplicas", "maxReplicas"]) {
    if (predictor[k] !== undefined && !Number.isInteger(predictor[k])) problems.push(`${where}: predictor.${k} must be an integer`);
  }
  // Policy: the data dir has one writer (deploy/base), so exactly one replica, and raw
  // Deployments (Knative allows one port and no gRPC probes).
  if (predictor.minReplicas !== 1 || predictor.maxReplicas !== 1) problems.push(`${where}: minReplicas and maxReplicas must be 1 (one writer of the data dir)`);
  if (o.metadata?.annotations?.["serving.kserve.io/deploymentMode"] !== "RawDeployment") {
    problems.push(`${where}: annotation serving.kserve.io/deploymentMode must be RawDeployment`);
  }
  const runtime = objs.find((r) => RUNTIMES.has(r.kind) && r.metadata?.name === model.runtime);
  if (!runtime) { problems.push(`${where}: runtime '${model.runtime ?? ""}' is not in the manifests`); return; }
  const formats = (runtime.spec?.supportedModelFormats ?? []).map((f) => f.name);
  if (!formats.includes(model.modelFormat?.name)) problems.push(`${where}: model format '${model.modelFormat?.name}' is not one of ${runtime.kind}/${runtime.metadata.name}'s (${formats.join(", ")})`);
  if (model.protocolVersion !== undefined && !(runtime.spec?.protocolVersions ?? []).includes(model.protocolVersion)) {
    problems.push(`${where}: protocolVersion ${model.protocolVersion} is not offered by ${runtime.kind}/${runtime.metadata.name}`);
  }
  const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: `${o.metadata.name}-predictor`, labels: {} }, spec: predictorPod(runtime, predictor) };
  const podWhere = `${where} (predictor pod with ${runtime.kind}/${runtime.metadata.name})`;
  await schemaCheck(podWhere, pod);
  const { volumes } = checkPodSpec(podWhere, "Deployment", pod.spec, configMaps);
  for (const c of pod.spec.containers) {
    for (const m of c.volumeMounts ?? []) if (!volumes.has(m.name)) problems.push(`${podWhere}: volumeMount ${m.name} has no volume`);
  }
  for (const v of pod.spec.volumes) {
    const claim = v.persistentVolumeClaim?.claimName;
    if (claim && !objs.some((x) => x.kind === "PersistentVolumeClaim" && x.metadata?.name === claim)) {
      problems.push(`${podWhere}: PersistentVolumeClaim ${claim} is not in the manifests`);
    }
  }
}

function checkDashboardConfigMap(where, o) {
  const entries = Object.entries(o.data ?? {});
  if (entries.length === 0) problems.push(`${where}: grafana_dashboard ConfigMap without data`);
  for (const [key, text] of entries) {
    let d;
    try { d = JSON.parse(text); } catch (e) { problems.push(`${where}: data.${key} is not JSON: ${e.message}`); continue; }
    if (typeof d.uid !== "string" || typeof d.title !== "string") problems.push(`${where}: data.${key} has no uid/title`);
    const ds = (d.templating?.list ?? []).find((v) => v.type === "datasource" && v.query === "prometheus");
    if (!ds) problems.push(`${where}: data.${key} has no Prometheus data-source variable`);
    const panels = (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== "row");
    if (panels.length === 0) problems.push(`${where}: data.${key} has no panels`);
    for (const p of panels) {
      if (p.datasource?.uid !== `\${${ds?.name}}`) problems.push(`${where}: panel '${p.title}' does not use the data-source variable`);
      if (!(p.targets ?? []).some((t) => typeof t.expr === "string" && t.expr)) problems.push(`${where}: panel '${p.title}' has no PromQL target`);
    }
  }
}

// --- CloudNativePG: a schema of the fields we use (postgresql.cnpg.io/v1 Cluster) ---------
const CNPG_SPEC_KEYS = new Set(["instances", "imageName", "imageCatalogRef", "primaryUpdateStrategy",
  "primaryUpdateMethod", "bootstrap", "storage", "walStorage", "resources", "postgresql", "affinity",
  "monitoring", "backup", "superuserSecret", "enableSuperuserAccess", "description", "inheritedMetadata",
  "certificates", "managed", "startDelay", "stopDelay", "switchoverDelay", "failoverDelay",
  "minSyncReplicas", "maxSyncReplicas", "priorityClassName", "env", "envFrom", "logLevel", "projectedVolumeTemplate",
  "externalClusters", "replica", "topologySpreadConstraints", "tablespaces", "plugins", "probes",
  "enablePDB", "imagePullPolicy", "imagePullSecrets", "serviceAccountTemplate", "smartShutdownTimeout",
  "replicationSlots", "ephemeralVolumeSource", "ephemeralVolumesSizeLimit", "seccompProfile", "podSecurityContext",
  "securityContext", "nodeMaintenanceWindow", "schedulerName", "postgresGID", "postgresUID"]);
const CNPG_INITDB_KEYS = new Set(["database", "owner", "secret", "options", "dataChecksums", "encoding",
  "localeCollate", "localeCType", "locale", "localeProvider", "walSegmentSize", "postInitSQL",
  "postInitApplicationSQL", "postInitTemplateSQL", "postInitSQLRefs", "postInitApplicationSQLRefs",
  "postInitTemplateSQLRefs", "import", "icuLocale", "icuRules", "builtinLocale"]);
const CNPG_STORAGE_KEYS = new Set(["size", "storageClass", "resizeInUseVolumes", "pvcTemplate"]);
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|M|G|T|P)?$/;

function checkCnpgCluster(where, o) {
  const spec = o.spec;
  if (!isMap(spec)) { problems.push(`${where}: no spec`); return; }
  for (const k of unknownKeys(spec, CNPG_SPEC_KEYS)) problems.push(`${where}: spec.${k} is not a Cluster field`);
  if (!Number.isInteger(spec.instances) || spec.instances < 1) problems.push(`${where}: spec.instances must be an integer >= 1`);
  if (spec.imageName !== undefined && (typeof spec.imageName !== "string" || !/[:@]/.test(spec.imageName))) {
    problems.push(`${where}: spec.imageName must be an image with a tag or digest`);
  }
  if (spec.primaryUpdateStrategy !== undefined && !["unsupervised", "supervised"].includes(spec.primaryUpdateStrategy)) {
    problems.push(`${where}: spec.primaryUpdateStrategy must be unsupervised or supervised`);
  }
  if (!isMap(spec.storage)) problems.push(`${where}: spec.storage is required`);
  for (const k of unknownKeys(spec.storage, CNPG_STORAGE_KEYS)) problems.push(`${where}: spec.storage.${k} is not a field`);
  if (spec.storage && !QUANTITY.test(String(spec.storage.size ?? ""))) problems.push(`${where}: spec.storage.size '${spec.storage.size ?? ""}' is not a quantity`);
  const initdb = spec.bootstrap?.initdb;
  if (spec.bootstrap !== undefined) {
    for (const k of unknownKeys(spec.bootstrap, new Set(["initdb", "recovery", "pg_basebackup"]))) problems.push(`${where}: spec.bootstrap.${k} is not a field`);
  }
  if (isMap(initdb)) {
    for (const k of unknownKeys(initdb, CNPG_INITDB_KEYS)) problems.push(`${where}: bootstrap.initdb.${k} is not a field`);
    for (const k of ["database", "owner"]) if (initdb[k] !== undefined && typeof initdb[k] !== "string") problems.push(`${where}: bootstrap.initdb.${k} must be a string`);
    if (initdb.secret !== undefined && (typeof initdb.secret?.name !== "string" || unknownKeys(initdb.secret, new Set(["name"])).length)) {
      problems.push(`${where}: bootstrap.initdb.secret must be {name: <Secret>}`);
    }
  }
  for (const part of ["requests", "limits"]) {
    for (const [k, v] of Object.entries(spec.resources?.[part] ?? {})) {
      if (!QUANTITY.test(String(v))) problems.push(`${where}: resources.${part}.${k} '${v}' is not a quantity`);
    }
  }
  const params = spec.postgresql?.parameters;
  if (params !== undefined && (!isMap(params) || Object.values(params).some((v) => typeof v !== "string"))) {
    problems.push(`${where}: postgresql.parameters must map strings to strings`);
  }
}

const rules = parse(readFileSync(rulesFile, "utf8"));
let objects = 0;
for (const input of inputs) {
  const [name, file] = input.includes("=") ? input.split("=", 2) : [input, input];
  const docs = parseAllDocuments(readFileSync(file, "utf8")).filter((d) => d.contents !== null);
  const objs = [];
  for (const d of docs) {
    if (d.errors.length) problems.push(`${name}: YAML: ${d.errors[0].message}`);
    else objs.push(d.toJSON());
  }
  const configMaps = new Map(objs.filter((o) => o.kind === "ConfigMap").map((o) => [o.metadata?.name, o]));
  const pods = []; // { where, labels, named ports }
  for (const o of objs) {
    objects++;
    const where = `${name}: ${o?.kind}/${o?.metadata?.name}`;
    if (!o?.apiVersion || !o?.kind || !o?.metadata?.name) {
      problems.push(`${where}: missing apiVersion, kind or metadata.name`);
      continue;
    }
    if (!CRDS.has(`${o.apiVersion}:${o.kind}`)) await schemaCheck(where, o);
    if (WORKLOADS.has(o.kind) || o.kind === "Pod") {
      const tpl = o.kind === "Pod" ? o : o.spec?.template;
      const { named, volumes } = checkPodSpec(where, o.kind, tpl?.spec ?? {}, configMaps);
      const sel = o.spec?.selector?.matchLabels;
      if (o.kind !== "Pod" && !matches(sel, tpl?.metadata?.labels)) problems.push(`${where}: selector does not match the pod template labels`);
      for (const c of tpl?.spec?.containers ?? []) {
        for (const m of c.volumeMounts ?? []) {
          const fromClaims = (o.spec?.volumeClaimTemplates ?? []).some((t) => t.metadata?.name === m.name);
          if (!volumes.has(m.name) && !fromClaims) problems.push(`${where}: volumeMount ${m.name} has no volume`);
        }
      }
      if (o.kind === "StatefulSet" && o.spec?.serviceName &&
          !objs.some((s) => s.kind === "Service" && s.metadata?.name === o.spec.serviceName)) {
        problems.push(`${where}: serviceName ${o.spec.serviceName} is not in the manifests`);
      }
      pods.push({ where, labels: tpl?.metadata?.labels ?? {}, named });
    }
  }
  // A CloudNativePG Cluster's instance pods carry cnpg.io/cluster=<name>.
  for (const o of objs.filter((c) => c.kind === "Cluster" && c.apiVersion === "postgresql.cnpg.io/v1")) {
    pods.push({ where: `${name}: Cluster/${o.metadata.name}`, labels: { "cnpg.io/cluster": o.metadata.name }, named: new Map() });
  }
  for (const o of objs) {
    const where = `${name}: ${o?.kind}/${o?.metadata?.name}`;
    if (o.kind === "Service") {
      const targets = pods.filter((p) => matches(o.spec?.selector, p.labels));
      if (targets.length === 0) problems.push(`${where}: selector matches no pod template`);
      for (const port of o.spec?.ports ?? []) {
        if (!(port.port >= 1 && port.port <= 65535)) problems.push(`${where}: port ${port.port} out of range`);
        if (typeof port.targetPort === "string" && targets.some((p) => !p.named.has(port.targetPort))) {
          problems.push(`${where}: targetPort '${port.targetPort}' is not a named container port`);
        }
      }
    }
    if (o.kind === "PodDisruptionBudget" || o.kind === "HorizontalPodAutoscaler") {
      if (o.kind === "PodDisruptionBudget" && !pods.some((p) => matches(o.spec?.selector?.matchLabels, p.labels))) {
        problems.push(`${where}: selector matches no pod template`);
      }
      if (o.kind === "HorizontalPodAutoscaler") {
        const ref = o.spec?.scaleTargetRef;
        if (!objs.some((w) => w.kind === ref?.kind && w.metadata?.name === ref?.name)) problems.push(`${where}: scaleTargetRef ${ref?.kind}/${ref?.name} is not in the manifests`);
      }
    }
    if (o.kind === "NetworkPolicy" && !pods.some((p) => matches(o.spec?.podSelector?.matchLabels, p.labels))) {
      problems.push(`${where}: podSelector matches no pod template`);
    }
    if (o.kind === "NetworkPolicy") {
      for (const [i, rule] of (o.spec?.ingress ?? []).entries()) {
        for (const peer of rule.from ?? []) {
          if (peer.podSelector && !peer.namespaceSelector && Object.keys(peer.podSelector).length > 0 &&
              !pods.some((p) => selects(peer.podSelector, p.labels))) {
            problems.push(`${where}: ingress[${i}] from.podSelector ${JSON.stringify(peer.podSelector)} matches no pod template`);
          }
        }
      }
    }
    if (o.kind === "Cluster" && o.apiVersion === "postgresql.cnpg.io/v1") checkCnpgCluster(where, o);
    if (o.kind === "ScaledObject") {
      const ref = o.spec?.scaleTargetRef;
      const kind = ref?.kind ?? "Deployment";
      if (!objs.some((w) => w.kind === kind && w.metadata?.name === ref?.name)) problems.push(`${where}: scaleTargetRef ${kind}/${ref?.name} is not in the manifests`);
      for (const [i, t] of (o.spec?.triggers ?? []).entries()) {
        const auth = t.authenticationRef;
        if (auth && (auth.kind ?? "TriggerAuthentication") === "TriggerAuthentication" &&
            !objs.some((a) => a.kind === "TriggerAuthentication" && a.metadata?.name === auth.name)) {
          problems.push(`${where}: triggers[${i}].authenticationRef ${auth.name} is not in the manifests`);
        }
      }
    }
    if (o.kind === "ServiceMonitor") {
      const svcs = objs.filter((s) => s.kind === "Service" && matches(o.spec?.selector?.matchLabels, s.metadata?.labels));
      if (svcs.length === 0) problems.push(`${where}: selector matches no Service`);
      if (!Array.isArray(o.spec?.endpoints) || o.spec.endpoints.length === 0) problems.push(`${where}: no endpoints`);
      for (const ep of o.spec?.endpoints ?? []) {
        if (!svcs.some((s) => (s.spec?.ports ?? []).some((p) => p.name === ep.port))) problems.push(`${where}: endpoint port '${ep.port}' is on no selected Service`);
      }
    }
    if (RUNTIMES.has(o.kind)) {
      checkRuntime(where, o);
      // A runtime no InferenceService here uses: its own pod still gets the Pod schema.
      if (!objs.some((i) => i.kind === "InferenceService" && i.spec?.predictor?.model?.runtime === o.metadata.name)) {
        await schemaCheck(`${where} (its pod)`, { apiVersion: "v1", kind: "Pod", metadata: { name: o.metadata.name }, spec: predictorPod(o, {}) });
      }
    }
    if (o.kind === "InferenceService") await checkInferenceService(where, o, objs, configMaps);
    if (o.kind === "ConfigMap" && o.metadata?.labels?.grafana_dashboard === "1") checkDashboardConfigMap(where, o);
    if (o.kind === "PrometheusRule" && !isDeepStrictEqual(o.spec?.groups, rules.groups)) {
      problems.push(`${where}: spec.groups differ from ${rulesFile} (run tests/deploy/sync-prometheusrule.sh)`);
    }
  }
}

for (const p of problems) console.log(`FAIL ${p}`);
console.log(`validate: ${objects} objects, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
