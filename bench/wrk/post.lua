-- POST one JSON body, read once per thread from a file, on every request.
-- The file's path comes after the URL on wrk's command line (args[1]) or in WRK_BODY;
-- an optional header ("Name: value", an API key for instance) may follow it (args[2]):
--   wrk -t1 -c16 -d5s --latency -s post.lua http://127.0.0.1:8000/predict body.json
--   wrk ... -s post.lua http://127.0.0.1:8000/predict body.json "Authorization: Bearer <key>"

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
  if args[2] ~= nil then
    local name, value = args[2]:match("^([^:]+):%s*(.*)$")
    if name == nil then
      error("post.lua: the header after the body file must read 'Name: value'")
    end
    wrk.headers[name] = value
  end
end
