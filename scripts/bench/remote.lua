-- POST /v1/remote/coupon-code with Antavo's body for a random one of BENCH_CUSTOMERS customers.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_REMOTE_KEY")
local customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "1000000")

function setup(thread)
    thread:set("seed", math.random(1, 1000000))
end

function init()
    math.randomseed(os.time() + seed)
end

function request()
    local body = string.format(
        '{"api_key":"%s","customer":"%d","type":"percentage","value":"10","coupon_percentage":"10"}',
        key, math.random(1, customers))
    return wrk.format(nil, nil, nil, body)
end

-- BENCH_RATE (requests a second over all connections, BENCH_CONNECTIONS of them) paces each
-- connection with a pause before every request, to read latencies at an offered rate.
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "32")

function delay()
    if rate > 0 then
        return math.floor(connections * 1000 / rate)
    end
    return 0
end
