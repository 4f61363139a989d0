-- wrk script for scripts/bench: POSTs Graph-shaped notification batches, each item unique (so
-- none is deduplicated), spread over SUBSCRIPTIONS receive-only subscriptions whose ids and
-- clientStates follow the pattern the bench config uses.
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local subscriptions = tonumber(os.getenv("BENCH_SUBSCRIPTIONS") or "1")
local counter = 0
local prefix = "x"
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("prefix", (os.getenv("BENCH_PREFIX") or "") .. "w" .. threads .. "-" .. tostring(os.time()))
end

function init(args)
  prefix = wrk.thread:get("prefix") or prefix
end

local function item(n)
  local s = n % subscriptions
  local id = string.format("00000000-0000-4000-8000-%012d", s)
  local resource = "Users/622eaaff-0683-4862-9de4-f2ec83c2bd98/Messages/" .. prefix .. "-" .. n
  return '{"subscriptionId":"' .. id .. '","subscriptionExpirationDateTime":"2026-12-01T11:00:00.0000000Z",' ..
    '"clientState":"bench-state-' .. s .. '","changeType":"created","resource":"' .. resource .. '",' ..
    '"tenantId":"84bd8158-6d4d-4958-8b9f-9d6445542f95","resourceData":{"@odata.type":"#Microsoft.Graph.Message",' ..
    '"@odata.id":"' .. resource .. '","@odata.etag":"W/\\"' .. prefix .. n .. '\\"","id":"' .. prefix .. "-" .. n .. '"}}'
end

function request()
  local items = {}
  for i = 1, batch do
    counter = counter + 1
    items[i] = item(counter)
  end
  local body = '{"value":[' .. table.concat(items, ",") .. ']}'
  return wrk.format("POST", "/notifications", { ["Content-Type"] = "application/json" }, body)
end
