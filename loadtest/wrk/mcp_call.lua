-- wrk script: POSTs one MCP request (MCP_BODY) and checks every response — HTTP 200, the
-- expected text (MCP_EXPECT) present, no `"isError":true` — so a fast error never counts
-- as a fast call. MCP_SESSION is sent as Mcp-Session-Id when set (servers without
-- sessions, such as Toolbox, leave it empty). done() prints one JSON line.
wrk.method = "POST"
wrk.body = os.getenv("MCP_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
local session = os.getenv("MCP_SESSION")
if session ~= nil and session ~= "" then
  wrk.headers["Mcp-Session-Id"] = session
end
local expect = os.getenv("MCP_EXPECT")

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  good, bad, sample = 0, 0, ""
end

function response(status, headers, body)
  if status == 200 and body:find(expect, 1, true) and not body:find('"isError":true', 1, true) then
    good = good + 1
  else
    bad = bad + 1
    if sample == "" then sample = tostring(status) .. " " .. body:sub(1, 200) end
  end
end

local function json_string(s)
  return '"' .. (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)) .. '"'
end

function done(summary, latency, requests)
  local good_total, bad_total, first = 0, 0, ""
  for _, t in ipairs(threads) do
    good_total = good_total + t:get("good")
    bad_total = bad_total + t:get("bad")
    if first == "" then first = t:get("sample") end
  end
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"good":%d,"bad":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d,"bad_sample":%s}\n',
    summary.requests, summary.duration, good_total, bad_total, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), json_string(first)))
end
