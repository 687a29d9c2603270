-- POST one JSON body, read once per thread from a file, on every request.
-- The file's path comes after the URL on wrk's command line (args[1]) or in WRK_BODY:
--   wrk -t1 -c16 -d5s --latency -s post.lua http://127.0.0.1:8000/predict body.json

function init(args)
  local path = args[1] or os.getenv("WRK_BODY")
  if path == nil then
    error("post.lua: pass the body file after the URL, or set WRK_BODY")
  end
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
