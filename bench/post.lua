-- wrk script: every request is a POST of the JSON body in $BODY to $PATH.
wrk.method = "POST"
wrk.path = os.getenv("PATH_TO")
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
