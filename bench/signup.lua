-- wrk script: POST /signup with a new email on every request
-- (SIGNUP_PREFIX-<n>@example.com), so each is a real account creation.
local prefix = os.getenv("SIGNUP_PREFIX") or "signup"
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
    n = n + 1
    local body = string.format(
        '{"email":"%s-%d@example.com","password":"bench-Pa55word-x","firstName":"B","lastName":"U"}',
        prefix, n)
    return wrk.format(nil, "/signup", nil, body)
end
