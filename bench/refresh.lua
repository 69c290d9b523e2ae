-- wrk script: POST /refresh-token, each a real rotation. Starts from the
-- refresh tokens in $REFRESH_FILE (one a line, at least as many as
-- connections); each answer's new token replaces the one it rotated.
local tokens = {}
for line in io.lines(os.getenv("REFRESH_FILE")) do tokens[#tokens + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
    local t = table.remove(tokens, 1) or "exhausted"
    return wrk.format(nil, "/refresh-token", nil, '{"refreshToken":"' .. t .. '"}')
end

response = function(status, headers, body)
    local t = body:match('"refresh_token":"([^"]+)"')
    if t then tokens[#tokens + 1] = t end
end
