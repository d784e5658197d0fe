import { randomUUID } from "node:crypto";
import { BatchWriteCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainHash } from "../../shared/crypto/chain-keys.ts";
import { ItemMacs } from "../../shared/crypto/item-integrity.ts";
import { kekFingerprint, LocalKeyring } from "../../shared/crypto/local-keyring.ts";
import { canonicalRecord } from "../../shared/domain/audit-chain.ts";
import { type KekReport, REKEY_KINDS, type RekeyKind } from "../../shared/domain/rotation.ts";
import { ItemRekey } from "../../shared/services/keys/item-rekey.ts";
import { BindingRepository } from "../../shared/storage/binding-repository.ts";
import { BreakGlassRepository } from "../../shared/storage/break-glass-repository.ts";
import { DeletionRepository } from "../../shared/storage/deletion-repository.ts";
import type { LocalDynamo } from "../../shared/storage/local-dynamo.ts";
import { SealRepository } from "../../shared/storage/seal-repository.ts";
import type { Table } from "../../shared/storage/table.ts";
import { TenantRepository } from "../../shared/storage/tenant-repository.ts";
import { TokenRepository } from "../../shared/storage/token-repository.ts";
import { WrapRepository } from "../../shared/storage/wrap-repository.ts";
import { getRawAuditRecord, getRawItem, putRawAuditRecord } from "../../testing/faults.ts";
import { type Harness, randomKek, startHarness, startStore } from "../../testing/harness.ts";
import { rewrapAndSettle } from "../../testing/rewrap.ts";

/*
 * What the KEK re-wrap's re-key must never do: make an item that fails its MAC valid, or let a seal
 * item that fails count as anything but sealed; and what verify must still catch once the old KEK,
 * and with it the old chain keys, are gone. Every edit here is one a principal with write access to
 * the table, and none to the KEK, could make, through the real SDK.
 */

type Store = { dynamo: LocalDynamo; table: Table };
const REASON = { "x-audit-reason": "authority re-key integrity test" };

const instance = (store: Store, active: Uint8Array, previous: Uint8Array[] = []) =>
  startHarness({
    store,
    keyring: new LocalKeyring({ active, previous }),
    env: { AUDIT_DENIAL_WINDOW_SECONDS: "0", ROTATION_LEASE_SECONDS: "0" },
  });

async function setRaw(table: Table, key: { pk: string; sk: string }, field: string, value: unknown) {
  await table.doc.send(
    new UpdateCommand({
      TableName: table.name,
      Key: key,
      UpdateExpression: "SET #f = :v",
      ExpressionAttributeNames: { "#f": field },
      ExpressionAttributeValues: { ":v": value },
    }),
  );
}

const sealKey = (scope: string) => ({ pk: `SEAL#${scope}`, sk: "SEAL" });
const tokenKey = (id: string) => ({ pk: `TOKEN#${id}`, sk: "TOKEN" });

describe("items that fail their MAC, across a KEK rotation", () => {
  const kekA = randomKek();
  const kekB = randomKek();
  const fpA = kekFingerprint(kekA);
  let store: Store;
  let a: Harness;
  let b: Harness;
  let adminB: string;
  let report: KekReport;
  let edited: { token: string; id: string };
  /** What instance A, on KEK A alone, answered after the edits and before the rotation. */
  const beforeRotation: Record<string, number> = {};

  const read = (h: Harness, tenant: string, token: string) =>
    h.call("GET", `/v1/tenants/${tenant}/secrets/db`, { token, headers: REASON });

  beforeAll(async () => {
    store = await startStore();
    a = await instance(store, kekA);
    const admin = await a.token("admin");
    for (const tenantId of ["sealed-edited", "sealed-flipped", "open-edited", "plain"]) {
      expect((await a.call("POST", "/v1/tenants", { token: admin, body: { tenantId } })).status).toBe(201);
      const put = await a.call("PUT", `/v1/tenants/${tenantId}/secrets/db`, {
        token: admin,
        body: { value: "v" },
      });
      expect(put.status).toBe(200);
    }
    const seal = (tenant: string, action: "seal" | "unseal") =>
      a.call("POST", `/v1/tenants/${tenant}/${action}`, { token: admin, body: { reason: action } });
    expect((await seal("sealed-edited", "seal")).status).toBe(200);
    expect((await seal("sealed-flipped", "seal")).status).toBe(200);
    expect((await seal("open-edited", "seal")).status).toBe(200);
    expect((await seal("open-edited", "unseal")).status).toBe(200);
    edited = await a.runtime.tokens.issue("runner", ["plain"], 3600);
    expect((await read(a, "plain", edited.token)).status).toBe(200);

    // Behind the service's back: a sealed item's reason, a sealed item flipped open, an open item's
    // reason, and a runner token widened to admin.
    await setRaw(store.table, sealKey("sealed-edited"), "reason", "nothing to see");
    await setRaw(store.table, sealKey("sealed-flipped"), "sealed", false);
    await setRaw(store.table, sealKey("open-edited"), "reason", "nothing to see");
    await setRaw(store.table, tokenKey(edited.id), "role", "admin");
    for (const tenant of ["sealed-edited", "sealed-flipped", "open-edited"]) {
      beforeRotation[tenant] = (await read(a, tenant, admin)).status;
    }
    beforeRotation.edited = (await read(a, "plain", edited.token)).status;
    // Instance A stops here: an instance still on the old KEK after the re-wrap would key new records
    // by it, which no re-anchor attests (docs/rotation.md).

    b = await instance(store, kekB, [kekA]);
    report = await rewrapAndSettle(b, admin);
    b = await instance(store, kekB);
    adminB = await b.token("admin");
  }, 60_000);
  afterAll(() => store?.dynamo.close());

  it("the re-wrap finishes, counting each as an integrity failure and leaving each under the old key", async () => {
    expect(report.rewrap).toMatchObject({ phase: "done", rekey: { itemIntegrityFailures: 4 } });
    for (const key of [sealKey("sealed-edited"), sealKey("sealed-flipped"), sealKey("open-edited")]) {
      expect((await getRawItem(store.table, key)).macKeyRef).toBe(`local:${fpA}`);
    }
    expect((await getRawItem(store.table, tokenKey(edited.id))).macKeyRef).toBe(`local:${fpA}`);
  });

  it("a seal item that says sealed and fails its MAC counts as sealed, before the rotation and after it", async () => {
    expect(beforeRotation["sealed-edited"]).toBe(423);
    const response = await read(b, "sealed-edited", adminB);
    expect(response.status).toBe(423);
    expect((await response.json()).error.code).toBe("tenant_sealed");
  });

  it("a seal item flipped to unsealed by hand fails its MAC and counts as sealed, after the rotation too", async () => {
    expect((await getRawItem(store.table, sealKey("sealed-flipped"))).sealed).toBe(false);
    expect(beforeRotation["sealed-flipped"]).toBe(423);
    expect((await read(b, "sealed-flipped", adminB)).status).toBe(423);
  });

  it("a seal item that says unsealed and fails its MAC counts as sealed too, and an admin's unseal lifts it", async () => {
    expect(beforeRotation["open-edited"]).toBe(423);
    expect((await read(b, "open-edited", adminB)).status).toBe(423);
    const unsealed = await b.call("POST", "/v1/tenants/open-edited/unseal", {
      token: adminB,
      body: { reason: "re-sealed by an admin under the new KEK" },
    });
    expect(unsealed.status).toBe(200);
    expect((await read(b, "open-edited", adminB)).status).toBe(200);
  });

  it("a token widened behind the service's back is still refused, and an untouched tenant still reads", async () => {
    expect(beforeRotation.edited).toBe(401);
    expect((await read(b, "plain", edited.token)).status).toBe(401);
    expect((await read(b, "plain", adminB)).status).toBe(200);
  });

  it("once the old KEK is gone, verify still catches a record edited with its hash recomputed", async () => {
    const intact = await b.runtime.chainVerifier.verify("plain");
    expect(intact).toMatchObject({ intact: true });
    const record = await getRawAuditRecord(store.table, "plain", 1);
    expect(record.macKeyRef).toMatch(new RegExp(`^local:${fpA}:`));
    const { hash: _hash, mac, ...body } = record;
    const forged = { ...body, detail: "rewritten after the KEK left" };
    await putRawAuditRecord(store.table, "plain", 1, {
      ...forged,
      hash: chainHash(canonicalRecord(forged)),
      mac,
    });
    expect(await b.runtime.chainVerifier.verify("plain")).toMatchObject({
      intact: false,
      break: { sequence: 2, reason: "link_mismatch" },
    });
  });

  it("once the old KEK is gone, a record appended under its key after the re-anchor is not attested", async () => {
    const before = await b.runtime.chainVerifier.verify("sealed-edited");
    expect(before).toMatchObject({ intact: true });
    const head = before.head;
    if (head === undefined) throw new Error("the chain has records");
    const last = await getRawAuditRecord(store.table, "sealed-edited", head.sequence);
    const { hash: _hash, mac, ...body } = last;
    const day = String(last.time).slice(0, 10);
    const forged = {
      ...body,
      id: randomUUID(),
      sequence: head.sequence + 1,
      prevHash: head.hash,
      macKeyRef: `local:${fpA}:${day}`,
      detail: "forged under a key no longer held",
    };
    await putRawAuditRecord(store.table, "sealed-edited", head.sequence + 1, {
      ...forged,
      hash: chainHash(canonicalRecord(forged)),
      mac,
    });
    expect(await b.runtime.chainVerifier.verify("sealed-edited")).toMatchObject({
      intact: false,
      verifiedThrough: head.sequence,
      break: { sequence: head.sequence + 1, reason: "unknown_mac_key" },
    });
  });
});

describe("a live wrap whose payload key names a KEK nobody has", () => {
  const kekA = randomKek();
  const kekB = randomKek();
  const fpA = kekFingerprint(kekA);
  let store: Store;
  let b: Harness;
  let report: KekReport;
  let failures: number;
  const wraps = { bogus: { id: "", token: "" }, intact: { id: "", token: "" } };
  const wrapKey = (id: string) => ({ pk: `WRAP#${id}`, sk: "WRAP" });

  beforeAll(async () => {
    store = await startStore();
    const a = await instance(store, kekA);
    const admin = await a.token("admin");
    expect((await a.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
      201,
    );
    const put = await a.call("PUT", "/v1/tenants/acme/secrets/db", {
      token: admin,
      body: { value: "wrapped-value" },
    });
    expect(put.status).toBe(200);
    for (const which of ["bogus", "intact"] as const) {
      const wrapped = await a.call("GET", "/v1/tenants/acme/secrets/db?wrapTtlSeconds=3600", {
        token: admin,
        headers: REASON,
      });
      expect(wrapped.status).toBe(200);
      const { id, token } = (await wrapped.json()).wrap;
      wraps[which] = { id, token };
    }
    // A table writer's edit the wrap's MAC does not cover: its payload key now names no KEK.
    await setRaw(store.table, wrapKey(wraps.bogus.id), "kekId", "bogus");

    b = await instance(store, kekB, [kekA]);
    const before = b.runtime.metrics.count("IntegrityFailures");
    report = await rewrapAndSettle(b, admin);
    failures = b.runtime.metrics.count("IntegrityFailures") - before;
    b = await instance(store, kekB);
  }, 60_000);
  afterAll(() => store?.dynamo.close());

  it("does not block the re-wrap: it finishes, counting the wrap as an integrity failure, and the old KEK may go", () => {
    expect(report.rewrap).toMatchObject({ phase: "done", rekey: { itemIntegrityFailures: 1 } });
    expect(failures).toBe(1);
    expect(report.keks.find((k) => k.kekId === fpA)).toMatchObject({ mayBeRemoved: true });
  });

  it("is left as it was, and fails closed: its unwrap opens nothing, while the untouched wrap opens", async () => {
    const left = await getRawItem(store.table, wrapKey(wraps.bogus.id));
    expect(left.kekId).toBe("bogus");
    expect(left.macKeyRef).toBe(`local:${fpA}`);
    const refused = await b.call("POST", "/v1/unwrap", { body: { token: wraps.bogus.token } });
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(refused.text).not.toContain("wrapped-value");
    const opened = await b.call("POST", "/v1/unwrap", { body: { token: wraps.intact.token } });
    expect(opened.status).toBe(200);
    expect(await opened.json()).toMatchObject({ data: { value: "wrapped-value" } });
  });
});

describe("live wraps where payload keys may not move (as on AWS, where the rotation role never touches `_system` keys)", () => {
  it("waits for a wrap under the old KEK, writing nothing, and counts one naming no configured KEK", async () => {
    const kekA = randomKek();
    const kekB = randomKek();
    const store = await startStore();
    try {
      const a = await instance(store, kekA);
      const admin = await a.token("admin");
      expect((await a.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
        201,
      );
      expect(
        (await a.call("PUT", "/v1/tenants/acme/secrets/db", { token: admin, body: { value: "v" } })).status,
      ).toBe(200);
      const ids: string[] = [];
      for (let n = 0; n < 2; n += 1) {
        const wrapped = await a.call("GET", "/v1/tenants/acme/secrets/db?wrapTtlSeconds=3600", {
          token: admin,
          headers: REASON,
        });
        ids.push((await wrapped.json()).wrap.id);
      }
      const [waiting, bogus] = ids.map((id) => ({ pk: `WRAP#${id}`, sk: "WRAP" }));
      if (waiting === undefined || bogus === undefined) throw new Error("two wraps were made");
      await setRaw(store.table, bogus, "kekId", "bogus");
      const before = await getRawItem(store.table, waiting);
      const keyring = new LocalKeyring({ active: kekB, previous: [kekA] });
      const b = await instance(store, kekB, [kekA]);
      const rekey = new ItemRekey(
        {
          tokens: new TokenRepository(store.table),
          bindings: new BindingRepository(store.table),
          seals: new SealRepository(store.table),
          deletions: new DeletionRepository(store.table),
          breakGlass: new BreakGlassRepository(store.table),
          wraps: new WrapRepository(store.table),
          tenants: new TenantRepository(store.table),
        },
        new ItemMacs(keyring.chainKeys().itemKeys()),
        keyring,
        b.runtime.metrics,
        b.runtime.logger,
        false,
        false,
      );
      expect(await rekey.page("wraps", kekFingerprint(kekB), undefined, 100)).toEqual({
        rekeyed: 0,
        integrityFailures: 1,
        waiting: 1,
      });
      expect(await getRawItem(store.table, waiting)).toEqual(before);
    } finally {
      await store.dynamo.close();
    }
  });
});

describe("GET /v1/kek for a previous KEK no DEK depends on", () => {
  const kekA = randomKek();
  const kekB = randomKek();
  const fpA = kekFingerprint(kekA);
  let store: Store;
  let runner: string;
  let admin: string;

  beforeAll(async () => {
    store = await startStore();
    const a = await instance(store, kekA);
    // No tenant, so no DEK and no registered KEK: only a token depends on KEK A.
    admin = await a.token("admin");
    runner = (await a.runtime.tokens.issue("auditor", ["anything"], 3600)).token;
  });
  afterAll(() => store?.dynamo.close());

  it("says it may not be removed until a re-wrap to the active KEK has re-keyed what it keyed", async () => {
    const b = await instance(store, kekB, [kekA]);
    const before = await b.call("GET", "/v1/kek", { token: admin });
    expect(before.status).toBe(200);
    expect((await before.json()).keks.find((k: { kekId: string }) => k.kekId === fpA)).toMatchObject({
      dataKeys: 0,
      registered: false,
      mayBeRemoved: false,
      status: expect.stringContaining("keep it until a re-wrap to the active KEK finishes"),
    });
    const after = await rewrapAndSettle(b, admin);
    expect(after.keks.find((k) => k.kekId === fpA)).toMatchObject({ mayBeRemoved: true });
    const alone = await instance(store, kekB);
    expect((await alone.call("GET", "/v1/tokens/self", { token: runner })).status).toBe(200);
    expect((await alone.call("GET", "/v1/kek", { token: admin })).status).toBe(200);
  });
});

describe("a change that meets the re-key of its item", () => {
  const kekA = randomKek();
  const kekB = randomKek();
  let store: Store;
  let h: Harness;
  let admin: string;
  let rekey: ItemRekey;

  /**
   * Runs one re-key page of `kind` just before the first write whose update or condition expression
   * contains `marker`, as if the re-wrap got there between the change's read and its write.
   */
  function rekeyBefore(marker: string, kind: RekeyKind): { met: () => boolean; remove: () => void } {
    let met = false;
    const name = `rekey-before-${marker}`;
    store.table.doc.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { UpdateExpression?: string; ConditionExpression?: string };
        const expressions = `${input.UpdateExpression ?? ""} ${input.ConditionExpression ?? ""}`;
        if (!met && expressions.includes(marker)) {
          met = true;
          expect((await rekey.page(kind, kekFingerprint(kekB), undefined, 100)).rekeyed).toBe(1);
        }
        return next(args);
      },
      { step: "initialize", name },
    );
    return { met: () => met, remove: () => store.table.doc.middlewareStack.remove(name) };
  }

  beforeAll(async () => {
    store = await startStore();
    const a = await instance(store, kekA);
    admin = await a.token("admin");
    expect((await a.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "acme" } })).status).toBe(
      201,
    );
    expect(
      (await a.call("PUT", "/v1/tenants/acme/secrets/db", { token: admin, body: { value: "v" } })).status,
    ).toBe(200);
    h = await instance(store, kekB, [kekA]);
    const keyring = new LocalKeyring({ active: kekB, previous: [kekA] });
    rekey = new ItemRekey(
      {
        tokens: new TokenRepository(store.table),
        bindings: new BindingRepository(store.table),
        seals: new SealRepository(store.table),
        deletions: new DeletionRepository(store.table),
        breakGlass: new BreakGlassRepository(store.table),
        wraps: new WrapRepository(store.table),
        tenants: new TenantRepository(store.table),
      },
      new ItemMacs(keyring.chainKeys().itemKeys()),
      keyring,
      h.runtime.metrics,
      h.runtime.logger,
      true,
    );
    // Everything issued before these tests is re-keyed already, so each page below moves one item.
    for (const kind of REKEY_KINDS) await rekey.page(kind, kekFingerprint(kekB), undefined, 100);
  });
  afterAll(() => store?.dynamo.close());

  it("a revocation is made on the re-keyed item, not answered 404", async () => {
    const a = await instance(store, kekA, []);
    const issued = await a.runtime.tokens.issue("runner", ["acme"], 3600);
    const race = rekeyBefore("revokedAt", "tokens");
    try {
      const revoked = await h.call("DELETE", `/v1/tokens/${issued.id}`, { token: admin });
      expect(race.met()).toBe(true);
      expect(revoked.status).toBe(204);
    } finally {
      race.remove();
    }
    expect(
      (await h.call("GET", "/v1/tenants/acme/secrets/db", { token: issued.token, headers: REASON })).status,
    ).toBe(401);
  });

  it("a binding's delete is made on the re-keyed item, not answered 404", async () => {
    const a = await instance(store, kekA, []);
    const created = await a.call("POST", "/v1/bindings", {
      token: await a.token("admin"),
      body: { principalArn: "arn:aws:iam::123456789012:role/racer", role: "runner", tenants: ["acme"] },
    });
    expect(created.status).toBe(201);
    const { bindingId } = await created.json();
    const race = rekeyBefore("deletedAt", "bindings");
    try {
      const deleted = await h.call("DELETE", `/v1/bindings/${bindingId}`, { token: admin });
      expect(race.met()).toBe(true);
      expect(deleted.status).toBe(204);
    } finally {
      race.remove();
    }
  });

  it("an unwrap is made on the re-keyed item, with its re-wrapped payload, not answered 410", async () => {
    const a = await instance(store, kekA, []);
    const wrapped = await a.call("GET", "/v1/tenants/acme/secrets/db?wrapTtlSeconds=300", {
      token: await a.token("admin"),
      headers: REASON,
    });
    expect(wrapped.status).toBe(200);
    const { token } = (await wrapped.json()).wrap;
    const race = rekeyBefore("usedAt", "wraps");
    try {
      const unwrapped = await h.call("POST", "/v1/unwrap", { body: { token } });
      expect(race.met()).toBe(true);
      expect(unwrapped.status).toBe(200);
      expect(await unwrapped.json()).toMatchObject({ data: { value: "v" } });
    } finally {
      race.remove();
    }
    expect((await h.call("POST", "/v1/unwrap", { body: { token } })).status).toBe(410);
  });

  it("a break-glass approval, activation and revoke are made on the re-keyed item, not answered 409", async () => {
    const a = await instance(store, kekA, []);
    const operator = await a.runtime.tokens.issue("operator", ["acme"], 3600);
    const approver = await a.runtime.tokens.issue("admin", ["*"], 3600);
    const path = async (step: string) => {
      const asked = await a.call("POST", "/v1/tenants/acme/break-glass", {
        token: operator.token,
        body: { reason: "INC-9 racing a re-key", durationMinutes: 5 },
      });
      expect(asked.status).toBe(201);
      return `/v1/tenants/acme/break-glass/${(await asked.json()).id}/${step}`;
    };
    /** The step, by instance B, with one break-glass re-key page run between its read and its write. */
    const raced = async (url: string, token: string) => {
      const race = rekeyBefore(":replaces", "break-glass");
      try {
        const answer = await h.call("POST", url, { token });
        expect(race.met()).toBe(true);
        return answer;
      } finally {
        race.remove();
      }
    };
    const approving = await path("approve");
    expect((await raced(approving, approver.token)).status).toBe(200);

    const activating = await path("approve");
    expect((await a.call("POST", activating, { token: approver.token })).status).toBe(200);
    const activated = await raced(activating.replace(/approve$/, "activate"), operator.token);
    expect(activated.status).toBe(201);
    const { credential } = await activated.json();
    expect((await h.call("GET", "/v1/tenants/acme/audit", { token: credential })).status).toBe(200);

    const revoking = await path("revoke");
    const revoked = await raced(revoking, approver.token);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ status: "revoked" });
  });
});

describe("audit records still waiting for the sequencer under the old KEK", () => {
  const kekA = randomKek();
  const kekB = randomKek();
  let store: Store;

  // As deployed: the request path writes records under their own keys, a sequencer chains them later.
  const deferred = (active: Uint8Array, previous: Uint8Array[] = []) =>
    startHarness({
      store,
      keyring: new LocalKeyring({ active, previous }),
      env: { AUDIT_SEQUENCING: "deferred", ROTATION_LEASE_SECONDS: "0" },
    });

  beforeAll(async () => {
    store = await startStore();
  });
  afterAll(() => store?.dynamo.close());

  it("are chained by the re-wrap while their key is still there, so none is refused once it is gone", async () => {
    const a = await deferred(kekA);
    const admin = await a.token("admin");
    expect((await a.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "queued" } })).status).toBe(
      201,
    );
    expect(
      await store.table.query({ keyCondition: "pk = :pk", values: { ":pk": "AUDIT#queued" } }),
    ).toMatchObject({
      items: [expect.objectContaining({ sk: expect.stringMatching(/^NEW#/) }), expect.anything()],
    });
    const b = await deferred(kekB, [kekA]);
    expect((await rewrapAndSettle(b, admin)).rewrap).toMatchObject({ phase: "done" });
    const alone = await deferred(kekB);
    expect(await alone.runtime.sequencer.catchUp("queued")).toMatchObject({ rejected: 0 });
    const verified = await alone.runtime.chainVerifier.verify("queued");
    expect(verified).toMatchObject({ intact: true });
    // tenant.create's attempt and success, chained (and so MAC'd) under the new KEK: nothing to re-anchor.
    expect(verified.records).toBe(2);
  });

  it("that the bounded drain leaves behind keep the re-wrap from being done, and the old KEK from going", async () => {
    // A store of its own: the test above finished a re-wrap to kekB already.
    await store.dynamo.close();
    store = await startStore();
    const fpA = kekFingerprint(kekA);
    const a = await deferred(kekA);
    const admin = await a.token("admin");
    expect(
      (await a.call("POST", "/v1/tenants", { token: admin, body: { tenantId: "blocked" } })).status,
    ).toBe(201);
    // A table writer's junk in front of them: a full catch-up round of records the sequencer refuses,
    // so the re-wrap's drain chains nothing and stops there.
    // Just older than the real ones (verify calls a chain whose oldest waiting record is much older
    // unsequenced, and so broken, which does not hold the re-wrap back).
    const [first] = (
      await store.table.query({
        keyCondition: "pk = :pk AND begins_with(sk, :p)",
        values: { ":pk": "AUDIT#blocked", ":p": "NEW#" },
        consistent: true,
      })
    ).items;
    const before = new Date(Date.parse(String(first?.sk).split("#")[1] ?? "") - 1000).toISOString();
    const junk = Array.from({ length: 1000 }, (_, n) => ({
      pk: "AUDIT#blocked",
      sk: `NEW#${before}#junk-${String(n).padStart(4, "0")}`,
      record: { junk: n },
    }));
    for (let at = 0; at < junk.length; at += 25) {
      await store.table.doc.send(
        new BatchWriteCommand({
          RequestItems: {
            [store.table.name]: junk.slice(at, at + 25).map((Item) => ({ PutRequest: { Item } })),
          },
        }),
      );
    }
    const b = await deferred(kekB, [kekA]);
    const report = await rewrapAndSettle(b, admin);
    expect(report.rewrap?.phase).not.toBe("done");
    expect(report.rewrap?.rekey).toMatchObject({ step: "chains", scope: "blocked" });
    expect(report.keks.find((k) => k.kekId === fpA)).toMatchObject({ mayBeRemoved: false });
    // The records it waits for are still there, and still open under the old KEK.
    const waiting = await store.table.query({
      keyCondition: "pk = :pk AND begins_with(sk, :p)",
      values: { ":pk": "AUDIT#blocked", ":p": "NEW#" },
      consistent: true,
    });
    expect(waiting.items.filter((item) => !String(item.sk).includes("#junk-"))).toHaveLength(2);
  }, 60_000);
});
