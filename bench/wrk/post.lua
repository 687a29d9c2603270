-- POST one body, read once per thread from a file, on every request.
-- The file's path comes after the URL on wrk's command line (args[1]) or in WRK_BODY; any
-- headers ("Name: value": an API key, or a Content-Type other than JSON's) may follow it:
--   wrk -t1 -c16 -d5s --latency -s post.lua http://127.0.0.1:8000/predict body.json
--   wrk ... -s post.lua http://127.0.0.1:8000/predict body.json "Authorization: Bearer <key>"
--   wrk ... -s post.lua http://127.0.0.1:8000/v2/models/m/infer body.bin \
--       "Content-Type: application/octet-stream" "Inference-Header-Content-Length: 170"

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
  for index = 2, #args do
    local name, value = args[index]:match("^([^:]+):%s*(.*)$")
    if name == nil then
      error("post.lua: each header after the body file must read 'Name: value'")
    end
    wrk.headers[name] = value
  end
end
