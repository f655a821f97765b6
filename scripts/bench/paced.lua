-- Pacing shared by the bench scripts that read latencies at an offered rate; they load it with
-- dofile from their own directory.
--
-- BENCH_RATE (requests a second over all connections, BENCH_CONNECTIONS of them) paces each
-- connection with a pause before every request. Unset or 0: no pause. The pause comes on top
-- of the answer's time (wrk has no clock to subtract it), so the rate reached falls short of
-- BENCH_RATE by the answer's share of a connection's cycle: the paced benches use 128
-- connections, so a 5 ms answer against a 128 ms pause costs about 4%.
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "32")

-- Each pause is drawn between half and one and a half times the mean, so the connections do
-- not fire together: synchronised pauses would offer the rate as bursts of one request per
-- connection.
local seeded = false

function delay()
    if rate <= 0 then
        return 0
    end
    if not seeded then
        math.randomseed(os.time() + math.floor(os.clock() * 1000000))
        seeded = true
    end
    local mean = connections * 1000 / rate
    return math.floor(mean * (0.5 + math.random()))
end
