import { afterAll, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/stores/memory/index.js";
import { CutProxy, recordConnections, startLive, TestClient, waitUntil } from "./harness.js";

describe("smoke", () => {
  it("connects, exchanges, cuts, resumes", async () => {
    const server = await startLive(new MemoryStore());
    const seen = recordConnections(server.live);
    const proxy = await new CutProxy(server.port).start();
    const client = new TestClient(`ws://127.0.0.1:${proxy.port}/live`);
    const open = await client.opened();
    expect(open.resumed).toBe(false);
    await waitUntil(() => seen[0]);
    await seen[0]!.conn.send({ n: 1 });
    client.conn.send("hi");
    await waitUntil(() => client.messages.length === 1 && seen[0]!.messages.length === 1);
    proxy.cut();
    await server.live.send(open.id, { n: 2 });
    const again = await client.opened(2);
    expect(again).toMatchObject({ id: open.id, resumed: true });
    await waitUntil(() => client.messages.length === 2);
    expect(client.messages).toEqual([{ n: 1 }, { n: 2 }]);
    client.conn.close();
    await proxy.stop();
    await server.stop();
  });
  afterAll(() => undefined);
});
