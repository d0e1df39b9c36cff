/**
 * What verification finds: one report per group, one per node, one line per check. Returned by the
 * VerifyClusterNodes workflow (from the verifyNode activity's node reports) and shown by the API's health page.
 */
export interface NodeCheck {
  /** ssh, config-test, aegir-ids, drift:PLATFORM, share-mount, visible:PLATFORM, db-resolution:NAME, probe:DOMAIN */
  name: string;
  ok: boolean;
  detail: string;
}

export interface NodeReport {
  server: string;
  ok: boolean;
  checks: NodeCheck[];
  aegirIds?: { uid: number; gid: number };
}

export interface VerifyReport {
  group: string;
  kind: string;
  ok: boolean;
  checkedAt: string;
  nodes: NodeReport[];
}
