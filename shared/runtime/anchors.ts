import type { AnchorLog } from "../domain/audit-chain.ts";
import { AnchorFile } from "../storage/anchor-file.ts";
import { S3AnchorLog } from "../storage/s3-anchor-log.ts";
import type { RuntimeConfig } from "./config.ts";

/**
 * Where chain heads are anchored: the S3 bucket when `AUDIT_ANCHOR_BUCKET` names one, else the anchor
 * file at `localPath` (`npm start`, the CLI's offline commands), else nowhere (a Lambda function of a stage
 * deployed without the bucket).
 */
export function createAnchorLog(config: RuntimeConfig, localPath: string): AnchorLog;
export function createAnchorLog(config: RuntimeConfig): AnchorLog | undefined;
export function createAnchorLog(config: RuntimeConfig, localPath?: string): AnchorLog | undefined {
  const { auditAnchors } = config;
  if (auditAnchors !== undefined) {
    return new S3AnchorLog({
      bucket: auditAnchors.bucket,
      region: config.region,
      requestTimeoutMs: config.awsRequestTimeoutMs,
      ...(auditAnchors.endpoint === undefined ? {} : { endpoint: auditAnchors.endpoint }),
    });
  }
  return localPath === undefined ? undefined : new AnchorFile(localPath);
}
