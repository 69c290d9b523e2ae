-- wrk script: GET with a different bearer token on each request, cycling
-- through the file $TOKENS_FILE (one token a line), so that with a
-- one-entry decision cache every request is a cache miss.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
    i = i % #tokens + 1
    return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
