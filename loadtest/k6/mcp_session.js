// k6 version of the MCP session flow, for bare-metal multicore hosts:
//   k6 run -e GATEWAY=http://10.0.0.5:8080 -e SERVER=bench -e TOOL=getItem \
//          -e ARGS='{"id":42}' --vus 64 --duration 60s loadtest/k6/mcp_session.js
// Each VU initializes its own session once, then calls the tool in a loop.
import http from 'k6/http';
import { check } from 'k6';

const GATEWAY = __ENV.GATEWAY || 'http://127.0.0.1:8080';
const SERVER = __ENV.SERVER || 'bench';
const TOOL = __ENV.TOOL || 'getItem';
const ARGS = JSON.parse(__ENV.ARGS || '{"id":42}');
const URL = `${GATEWAY}/mcp/${SERVER}`;
const BASE = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

let session = null;

function initialize() {
  const res = http.post(URL, JSON.stringify({
    jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'k6', version: '1' } },
  }), { headers: BASE });
  check(res, { 'initialize 200': (r) => r.status === 200 });
  const sid = res.headers['Mcp-Session-Id'];
  const headers = Object.assign({}, BASE, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' });
  const n = http.post(URL, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), { headers });
  check(n, { 'initialized 202': (r) => r.status === 202 });
  return headers;
}

export default function () {
  if (session === null) {
    session = initialize();
  }
  const res = http.post(URL, JSON.stringify({
    jsonrpc: '2.0', id: __ITER + 1, method: 'tools/call', params: { name: TOOL, arguments: ARGS },
  }), { headers: session });
  check(res, {
    'status 200': (r) => r.status === 200,
    'tool succeeded': (r) => { const b = r.json(); return b.result !== undefined && b.result.isError !== true; },
  });
}
