-- wrk script: POST /signin, cycling through SIGNIN_USERS users made by
-- bench/signin.sh (bench<i>@example.com / bench-Pa55word-<i>), so each
-- request is a real, successful sign-in of a different user in turn.
local users = tonumber(os.getenv("SIGNIN_USERS") or "64")
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
    i = i % users + 1
    local body = string.format('{"email":"bench%d@example.com","password":"bench-Pa55word-%d"}', i, i)
    return wrk.format(nil, "/signin", nil, body)
end
