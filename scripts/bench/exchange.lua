-- POST /v1/market/products/{id}/exchange for a random one of BENCH_CUSTOMERS customers (c1..cN),
-- each request under its own Idempotency-Key.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.headers["Content-Type"] = "application/json"
local customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "100000")
local counter = 0

function setup(thread)
    thread:set("seed", math.random(1, 1000000))
end

function init()
    math.randomseed(os.time() + seed)
end

function request()
    counter = counter + 1
    local body = string.format('{"customer":{"external_id":"c%d"}}', math.random(1, customers))
    -- wrk.format takes the given headers instead of wrk.headers, so copy those in.
    local headers = {}
    for name, value in pairs(wrk.headers) do
        headers[name] = value
    end
    headers["Idempotency-Key"] = string.format("bench-%d-%d", seed, counter)
    return wrk.format(nil, nil, headers, body)
end
