-- Mints sessions and uses each once: initialize, then a ping with the session it returned.
-- Drives session memory (loadtest/RESULTS.md, "Sessions"); pair with a config whose
-- session.initialize_rate and max_active are raised above the run's size.
local init = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}'
local ping = '{"jsonrpc":"2.0","id":2,"method":"ping"}'
local sid = nil
local base = {["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream"}

request = function()
  if sid == nil then
    return wrk.format("POST", wrk.path, base, init)
  end
  local h = {["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream", ["Mcp-Session-Id"] = sid, ["MCP-Protocol-Version"] = "2025-06-18"}
  sid = nil
  return wrk.format("POST", wrk.path, h, ping)
end

response = function(status, headers, body)
  local s = headers["mcp-session-id"] or headers["Mcp-Session-Id"]
  if s ~= nil then
    sid = s
  end
end
