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

-- Paced by BENCH_RATE (paced.lua). wrk runs this file in several Lua states and from any
-- working directory, so paced.lua is found beside this file's own path.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "paced.lua")
