-- GET a prediction by entity id, cycling through ids read from a file (one per line).
-- The URL is the path up to the id; the file's path comes after the URL (args[1]):
--   wrk -t1 -c16 -d5s --latency -s entities.lua http://127.0.0.1:8000/v1/models/m/entities ids.txt

local ids = {}
local next_id = 1

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    ids[#ids + 1] = line
  end
  file:close()
end

function request()
  local id = ids[next_id]
  next_id = next_id % #ids + 1
  return wrk.format("GET", wrk.path .. "/" .. id .. "/prediction")
end
