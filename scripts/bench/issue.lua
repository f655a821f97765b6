-- POST /v1/pools/{id}/issue to a random one of BENCH_CUSTOMERS customers (c1..cN).
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.headers["Content-Type"] = "application/json"
local customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "100000")

function setup(thread)
    thread:set("seed", math.random(1, 1000000))
end

function init()
    math.randomseed(os.time() + seed)
end

function request()
    local body = string.format('{"customer":{"external_id":"c%d"}}', math.random(1, customers))
    return wrk.format(nil, nil, nil, body)
end
