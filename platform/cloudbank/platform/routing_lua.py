"""The Lua scripts behind `cloudbank.platform.routing`: every change of a ticket, a teller or an offer
runs as one script, so it is atomic across all platform nodes sharing the Redis.

Each script is PRELUDE + its body. ARGV[1] is the clock (seconds, as text), ARGV[2] the day
("YYYY-MM-DD", for per-teller daily counts), ARGV[3] a random prefix for new offer ids, ARGV[4]
'1' to publish events; the script's own arguments follow. Scripts return JSON text: `{"ok": ...}`
or `{"err": CODE}`.

The events of a new offer (`offer` to the teller, `ticket.update` to the customer) and of an
accepted one (`ticket.update`, connected) are appended to the clients' streams (`events.py`'s
format) inside the script: the decision and its events then take one round trip, not two, which is
most of a platform node's CPU per decision (measured: `cloudbank bench acd`).

Redis keys (prefix `acd:`):
  q:<queue>            zset  waiting tickets by score (enter time minus priority boost)
  pq:<teller>          zset  tickets transferred to one teller, same scores
  qs:<queue>           hash  skill, strategy, ring_s, wrapup_s, aht_s
  queues / skillq:<s>  set   all queue codes / queue codes needing skill s
  t:<ticket>           hash  the ticket
  u:<teller>           hash  the teller: state, reason, since, skills "a=3,b=1", offer, ticket,
                             day counts (calls, offered, missed, declined, handle_s), after (wrap-up end)
  ready:<skill>:<strategy>  zset  ready tellers ordered for that strategy (lowest first)
  staffed:<skill>      set   signed-in (not offline) tellers with the skill (for the wait estimate)
  o:<offer>            hash  ticket, teller, queue, expires
  due:offers / due:wrapup / due:callback   zsets of things to do at a time
  log                  stream  the queue log (see queue_log.py)
  dirty                set   queues whose positions changed (the matcher re-pushes them)
Outside the prefix: events:<client>, the clients' event streams (events.py), for offer events.

Keys are built inside the scripts, so this needs one Redis (or a cluster hash-tagging `acd:`).
"""

from __future__ import annotations

from cloudbank.platform.events import STREAM_MAXLEN, STREAM_TTL_S, stream_key

LOG_MAXLEN = 200_000

PRELUDE = r"""
local NOW_S = ARGV[1]
local now = tonumber(NOW_S)
local DAY = ARGV[2]
local OID = ARGV[3]
local PUBLISH = ARGV[4] == '1'
local P = 'acd:'
local STRATS = {'longest_idle', 'fewest_calls', 'skill_level'}

local function fmt(x) return string.format('%.3f', x) end

local function reply(x) return cjson.encode(x) end
local function fail(code) return cjson.encode({err = code}) end

local function skills_of(tk)
  local s = redis.call('HGET', tk, 'skills') or ''
  local out = {}
  for sk, lv in string.gmatch(s, '([^,=]+)=([^,]+)') do out[#out + 1] = {sk, tonumber(lv)} end
  return out
end

local function roll_day(tk)
  if redis.call('HGET', tk, 'day') ~= DAY then
    redis.call('HSET', tk, 'day', DAY, 'calls', 0, 'offered', 0, 'missed', 0, 'declined', 0, 'handle_s', 0)
  end
end

-- an event to one client's stream, written as events.publish writes it
local function emit(client, event)
  if not PUBLISH or not client or client == '' then return end
  local key = '""" + stream_key("") + r"""' .. client
  redis.call('XADD', key, 'MAXLEN', '~', '""" + str(STREAM_MAXLEN) + r"""', '*', 'e', cjson.encode(event))
  redis.call('EXPIRE', key, '""" + str(STREAM_TTL_S) + r"""')
end

local function log(ev, q, ticket, teller, extra)
  local args = {'XADD', P .. 'log', 'MAXLEN', '~', '""" + str(LOG_MAXLEN) + r"""', '*',
                'ev', ev, 'q', q, 'ticket', ticket, 'teller', teller or '', 'at', NOW_S}
  for _, v in ipairs(extra or {}) do args[#args + 1] = v end
  redis.call(unpack(args))
end

local function unready(teller)
  local tk = P .. 'u:' .. teller
  for _, sl in ipairs(skills_of(tk)) do
    for _, st in ipairs(STRATS) do redis.call('ZREM', P .. 'ready:' .. sl[1] .. ':' .. st, teller) end
  end
end

local function set_staffed(teller, on)
  local tk = P .. 'u:' .. teller
  for _, sl in ipairs(skills_of(tk)) do
    if on then redis.call('SADD', P .. 'staffed:' .. sl[1], teller)
    else redis.call('SREM', P .. 'staffed:' .. sl[1], teller) end
  end
end

local function make_ready(teller)
  local tk = P .. 'u:' .. teller
  roll_day(tk)
  local calls = tonumber(redis.call('HGET', tk, 'calls') or '0')
  redis.call('HSET', tk, 'state', 'ready', 'reason', '', 'since', NOW_S, 'idle_since', NOW_S,
             'offer', '', 'ticket', '', 'after', '', 'after_reason', '')
  redis.call('ZREM', P .. 'due:wrapup', teller)
  for _, sl in ipairs(skills_of(tk)) do
    local base = P .. 'ready:' .. sl[1] .. ':'
    redis.call('ZADD', base .. 'longest_idle', NOW_S, teller)
    redis.call('ZADD', base .. 'fewest_calls', fmt(calls * 1e10 + now), teller)
    redis.call('ZADD', base .. 'skill_level', fmt(-sl[2] * 1e10 + now), teller)
  end
  set_staffed(teller, true)
end

local function make_not_ready(teller, reason)
  local tk = P .. 'u:' .. teller
  unready(teller)
  redis.call('ZREM', P .. 'due:wrapup', teller)
  redis.call('HSET', tk, 'state', 'not_ready', 'reason', reason, 'since', NOW_S, 'offer', '', 'ticket', '',
             'after', '', 'after_reason', '')
  set_staffed(teller, true)
end

-- the queues a teller can serve: those needing any of its skills
local function teller_queues(teller)
  local seen, out = {}, {}
  for _, sl in ipairs(skills_of(P .. 'u:' .. teller)) do
    for _, q in ipairs(redis.call('SMEMBERS', P .. 'skillq:' .. sl[1])) do
      if not seen[q] then seen[q] = true; out[#out + 1] = q end
    end
  end
  table.sort(out)
  return out
end

local function skill_queues(skill)
  local out = redis.call('SMEMBERS', P .. 'skillq:' .. skill)
  table.sort(out)
  return out
end

local function offer(q, tid, teller)
  local tk, key = P .. 'u:' .. teller, P .. 't:' .. tid
  local ring = tonumber(redis.call('HGET', P .. 'qs:' .. q, 'ring_s') or '20')
  local oid = OID .. redis.call('INCR', P .. 'seq')
  local exp = fmt(now + ring)
  local pq = redis.call('HGET', key, 'pq')
  if pq and pq ~= '' then redis.call('ZREM', P .. 'pq:' .. pq, tid) else redis.call('ZREM', P .. 'q:' .. q, tid) end
  unready(teller)
  roll_day(tk)
  redis.call('HINCRBY', tk, 'offered', 1)
  redis.call('HSET', tk, 'state', 'offered', 'reason', '', 'since', NOW_S, 'offer', oid, 'ticket', tid)
  redis.call('HSET', key, 'state', 'offered', 'offer', oid, 'teller', teller)
  redis.call('HSET', P .. 'o:' .. oid, 'ticket', tid, 'teller', teller, 'queue', q, 'expires', exp, 'at', NOW_S)
  redis.call('ZADD', P .. 'due:offers', exp, oid)
  redis.call('SADD', P .. 'dirty', q)
  local t = redis.call('HMGET', key, 'enq', 'channel', 'branch', 'priority', 'customer')
  local waited = fmt(now - tonumber(t[1]))
  log('offer', q, tid, teller, {'offer', oid, 'waited_s', waited})
  emit('user:' .. teller, {type = 'offer', offer_id = oid, ticket_id = tid, service = q, channel = t[2],
                           branch = t[3], priority = t[4], waited_s = tonumber(waited), expires_at = tonumber(exp)})
  emit(t[5], {type = 'ticket.update', ticket = {id = tid, service = q, state = 'offered', position = 0,
              estimated_wait_s = 0, channel = t[2], priority = t[4], waited_s = tonumber(waited)}})
  return {offer_id = oid, ticket_id = tid, teller_id = teller, service = q, expires_at = tonumber(exp),
          channel = t[2], branch = t[3], priority = t[4], customer = t[5], waited_s = tonumber(waited)}
end

-- the first {id, score} of a queue zset whose ticket still exists: a ticket left waiting for a day
-- loses its hash (EXPIRE) but not its zset entry, and offering it would fail half-way; drop those
local function live_head(zkey)
  for _ = 1, 100 do
    local head = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
    if not head[1] or redis.call('EXISTS', P .. 't:' .. head[1]) == 1 then return head end
    redis.call('ZREM', zkey, head[1])
  end
  return {}
end

-- offer waiting tickets to ready tellers, oldest score first across `queues`, at most `limit`
local function match(queues, limit, made)
  for _ = 1, limit do
    local bq, bs, bt, bu
    for _, q in ipairs(queues) do
      local head = live_head(P .. 'q:' .. q)
      if head[1] and (bs == nil or tonumber(head[2]) < bs) then
        local spec = redis.call('HMGET', P .. 'qs:' .. q, 'skill', 'strategy')
        if spec[1] then
          local u = redis.call('ZRANGE', P .. 'ready:' .. spec[1] .. ':' .. spec[2], 0, 0)
          if u[1] then bq, bs, bt, bu = q, tonumber(head[2]), head[1], u[1] end
        end
      end
    end
    if not bq then break end
    made[#made + 1] = offer(bq, bt, bu)
  end
  return made
end

-- a ready teller first takes what was transferred to them personally, then the queues
local function match_teller(teller, made)
  local head = live_head(P .. 'pq:' .. teller)
  if head[1] then
    made[#made + 1] = offer(redis.call('HGET', P .. 't:' .. head[1], 'queue'), head[1], teller)
    return made
  end
  return match(teller_queues(teller), 1, made)
end

-- put an offered ticket back at its old place; returns its queue
local function put_back(tid)
  local key = P .. 't:' .. tid
  local t = redis.call('HMGET', key, 'queue', 'score', 'pq')
  if t[3] and t[3] ~= '' then redis.call('ZADD', P .. 'pq:' .. t[3], t[2], tid)
  else redis.call('ZADD', P .. 'q:' .. t[1], t[2], tid) end
  redis.call('HSET', key, 'state', 'waiting', 'offer', '', 'teller', '')
  redis.call('SADD', P .. 'dirty', t[1])
  return t[1]
end

-- end an offer without a call: ring-no-answer ('timeout') or 'decline'; the ticket keeps its place
local function release(oid, ev, reason, made)
  local o = redis.call('HMGET', P .. 'o:' .. oid, 'ticket', 'teller', 'queue')
  redis.call('DEL', P .. 'o:' .. oid)
  redis.call('ZREM', P .. 'due:offers', oid)
  if not o[1] then return nil end
  local q = put_back(o[1])
  local tk = P .. 'u:' .. o[2]
  if redis.call('HGET', tk, 'offer') == oid then
    roll_day(tk)
    redis.call('HINCRBY', tk, ev == 'timeout' and 'missed' or 'declined', 1)
    make_not_ready(o[2], reason)
  end
  local enq = tonumber(redis.call('HGET', P .. 't:' .. o[1], 'enq'))
  log(ev, q, o[1], o[2], {'offer', oid, 'waited_s', fmt(now - enq)})
  local pq = redis.call('HGET', P .. 't:' .. o[1], 'pq')
  if not (pq and pq ~= '') then
    local skill = redis.call('HGET', P .. 'qs:' .. q, 'skill')
    if skill then match(skill_queues(skill), 1, made) end
  end
  return {offer_id = oid, ticket_id = o[1], teller_id = o[2], service = q}
end

local function finish_wrapup(teller, not_ready, reason, made)
  local tk = P .. 'u:' .. teller
  local after, after_reason = unpack(redis.call('HMGET', tk, 'after', 'after_reason'))
  if not_ready or after == 'not_ready' then
    local r = reason
    if r == '' then r = (after_reason and after_reason ~= '') and after_reason or 'after_call' end
    make_not_ready(teller, r)
  else
    make_ready(teller)
    match_teller(teller, made)
  end
end

local function teller_raw(teller)
  return redis.call('HGETALL', P .. 'u:' .. teller)
end

local function state_of(teller)
  return redis.call('HGET', P .. 'u:' .. teller, 'state') or 'offline'
end
"""

# ARGV[5..]: random part of the ticket id, queue, score, JSON of the ticket's fields.
# The id starts with a zero-padded sequence number: tickets with equal scores (same millisecond,
# same class) sort by id in the zset, so this keeps them first come, first served.
ENQUEUE = r"""
local q, score, fields = ARGV[6], ARGV[7], cjson.decode(ARGV[8])
local skill = redis.call('HGET', P .. 'qs:' .. q, 'skill')
if not skill then return fail('no_queue') end
local tid = string.format('%012d', redis.call('INCR', P .. 'tseq')) .. '-' .. ARGV[5]
local key = P .. 't:' .. tid
local args = {'HSET', key, 'id', tid, 'queue', q, 'score', score, 'state', 'waiting', 'created', NOW_S, 'pq', ''}
for k, v in pairs(fields) do args[#args + 1] = k; args[#args + 1] = tostring(v) end
redis.call(unpack(args))
redis.call('ZADD', P .. 'q:' .. q, score, tid)
redis.call('SADD', P .. 'dirty', q)
log('enter', q, tid, '', {'priority', fields.priority or 'normal', 'channel', fields.channel or ''})
redis.call('EXPIRE', key, 86400)
local made = match(skill_queues(skill), 1, {})
local rank = redis.call('ZRANK', P .. 'q:' .. q, tid)
return reply({ok = true, made = made, ticket_id = tid, position = rank and (rank + 1) or 0,
              staffed = redis.call('SCARD', P .. 'staffed:' .. skill),
              aht_s = tonumber(redis.call('HGET', P .. 'qs:' .. q, 'aht_s') or '300')})
"""

# ARGV[5..]: teller, target state (ready|not_ready|offline), reason, skills "a=1,b=2" ('-' = keep)
SET_STATE = r"""
local teller, target, reason, skills = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local tk = P .. 'u:' .. teller
local state = state_of(teller)
if state == 'offered' then return fail('offered') end
if state == 'busy' then
  if target == 'not_ready' then
    redis.call('HSET', tk, 'after', 'not_ready', 'after_reason', reason)
    return reply({ok = true, pending = true, made = {}, teller = teller_raw(teller)})
  end
  return fail('busy')
end
if skills ~= '-' then
  unready(teller); set_staffed(teller, false)
  redis.call('HSET', tk, 'skills', skills)
end
redis.call('SADD', P .. 'tellers', teller)
local made = {}
if target == 'ready' then
  if state ~= 'ready' or skills ~= '-' then make_ready(teller) end
  match_teller(teller, made)
elseif target == 'not_ready' then
  make_not_ready(teller, reason)
else
  unready(teller)
  set_staffed(teller, false)
  redis.call('ZREM', P .. 'due:wrapup', teller)
  redis.call('HSET', tk, 'state', 'offline', 'reason', reason, 'since', NOW_S, 'offer', '', 'ticket', '',
             'after', '', 'after_reason', '')
end
return reply({ok = true, pending = false, made = made, teller = teller_raw(teller)})
"""

# ARGV[5..]: offer id, teller, the call-back threshold (s) the customer's view shows
ACCEPT = r"""
local oid, teller, callback_threshold = ARGV[5], ARGV[6], tonumber(ARGV[7])
local o = redis.call('HMGET', P .. 'o:' .. oid, 'ticket', 'teller', 'queue', 'expires')
if not o[1] or o[2] ~= teller then return fail('no_offer') end
if now > tonumber(o[4]) then return fail('expired') end
local tk, key = P .. 'u:' .. teller, P .. 't:' .. o[1]
redis.call('DEL', P .. 'o:' .. oid)
redis.call('ZREM', P .. 'due:offers', oid)
roll_day(tk)
redis.call('HINCRBY', tk, 'calls', 1)
redis.call('HSET', tk, 'state', 'busy', 'since', NOW_S, 'offer', '', 'ticket', o[1], 'accepted_at', NOW_S)
redis.call('HSET', key, 'state', 'connected', 'offer', '', 'accepted_at', NOW_S, 'pq', '')
redis.call('HDEL', P .. 'pushed', o[1])
local waited = fmt(now - tonumber(redis.call('HGET', key, 'enq')))
log('accept', o[3], o[1], teller, {'offer', oid, 'waited_s', waited})
-- the customer's view of the connected ticket, as Router._view builds it
local t = redis.call('HMGET', key, 'customer', 'queue', 'channel', 'priority', 'callback_offer', 'callback_at')
local view = {id = o[1], service = t[2], state = 'connected', position = 0, estimated_wait_s = 0, channel = t[3],
              priority = t[4], waited_s = cjson.null}
if t[5] == '1' then view.callback_offer = {threshold_s = callback_threshold} end
if t[6] and t[6] ~= '' then view.callback_at = tonumber(t[6]) end
emit(t[1], {type = 'ticket.update', ticket = view})
return reply({ok = true, ticket_id = o[1], ticket = redis.call('HGETALL', key)})
"""

# ARGV[5..]: offer id, teller
DECLINE = r"""
local oid, teller = ARGV[5], ARGV[6]
local o = redis.call('HMGET', P .. 'o:' .. oid, 'teller', 'expires')
if not o[1] or o[1] ~= teller then return fail('no_offer') end
if now > tonumber(o[2]) then return fail('expired') end
local made = {}
local released = release(oid, 'decline', 'declined', made)
return reply({ok = true, released = released, made = made, teller = teller_raw(teller)})
"""

# ARGV[5..]: limit
TICK = r"""
local limit = tonumber(ARGV[5])
local made, expired, woke, called = {}, {}, {}, {}
for _, oid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due:offers', '-inf', NOW_S, 'LIMIT', 0, limit)) do
  local r = release(oid, 'timeout', 'ring_no_answer', made)
  if r then expired[#expired + 1] = r end
end
for _, teller in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due:wrapup', '-inf', NOW_S, 'LIMIT', 0, limit)) do
  redis.call('ZREM', P .. 'due:wrapup', teller)
  if state_of(teller) == 'wrap_up' then
    finish_wrapup(teller, false, '', made)
    woke[#woke + 1] = teller
  end
end
for _, tid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due:callback', '-inf', NOW_S, 'LIMIT', 0, limit)) do
  redis.call('ZREM', P .. 'due:callback', tid)
  local key = P .. 't:' .. tid
  local t = redis.call('HMGET', key, 'queue', 'callback_at', 'boost', 'state')
  if t[4] == 'callback' then
    local score = fmt(tonumber(t[2]) - tonumber(t[3] or '0'))
    redis.call('HSET', key, 'state', 'waiting', 'enq', t[2], 'score', score)
    redis.call('ZADD', P .. 'q:' .. t[1], score, tid)
    redis.call('SADD', P .. 'dirty', t[1])
    log('enter', t[1], tid, '', {'callback', '1'})
    called[#called + 1] = tid
  end
end
match(redis.call('SMEMBERS', P .. 'queues'), limit, made)
return reply({ok = true, made = made, expired = expired, woke = woke, called = called})
"""

# ARGV[5..]: ticket, customer ('' = any)
ABANDON = r"""
local tid, customer = ARGV[5], ARGV[6]
local key = P .. 't:' .. tid
local t = redis.call('HMGET', key, 'state', 'customer', 'queue', 'enq', 'offer', 'teller', 'pq')
if not t[1] or (customer ~= '' and t[2] ~= customer) then return fail('no_ticket') end
local made, cancelled = {}, nil
if t[1] == 'callback' then
  redis.call('ZREM', P .. 'due:callback', tid)
  redis.call('HSET', key, 'state', 'abandoned', 'ended', NOW_S)
  log('callback', t[3], tid, '', {'action', 'cancel'})
  return reply({ok = true, made = made})
end
if t[1] ~= 'waiting' and t[1] ~= 'offered' then return fail('not_waiting') end
if t[7] and t[7] ~= '' then redis.call('ZREM', P .. 'pq:' .. t[7], tid) end
redis.call('ZREM', P .. 'q:' .. t[3], tid)
redis.call('HSET', key, 'state', 'abandoned', 'offer', '', 'ended', NOW_S)
redis.call('HDEL', P .. 'pushed', tid)
redis.call('SADD', P .. 'dirty', t[3])
-- logged before the freed teller's next offer, so the log reads in cause-and-effect order
log('abandon', t[3], tid, t[1] == 'offered' and t[6] or '', {'waited_s', fmt(now - tonumber(t[4])),
    'offer', t[1] == 'offered' and t[5] or ''})
if t[1] == 'offered' then
  redis.call('DEL', P .. 'o:' .. t[5])
  redis.call('ZREM', P .. 'due:offers', t[5])
  cancelled = {offer_id = t[5], teller_id = t[6], ticket_id = tid}
  if redis.call('HGET', P .. 'u:' .. t[6], 'offer') == t[5] then
    make_ready(t[6])
    match_teller(t[6], made)
  end
end
return reply({ok = true, made = made, cancelled = cancelled})
"""

# ARGV[5..]: ticket, priority class, its boost. Staff move a waiting ticket: its place becomes its
# enter time minus the new boost, as if it had arrived with that class.
PRIORITY = r"""
local tid, priority, boost = ARGV[5], ARGV[6], tonumber(ARGV[7])
local key = P .. 't:' .. tid
local t = redis.call('HMGET', key, 'state', 'queue', 'enq', 'pq', 'priority')
if not t[1] then return fail('no_ticket') end
if t[1] ~= 'waiting' then return fail('not_waiting') end
local score = fmt(tonumber(t[3]) - boost)
local zkey = (t[4] and t[4] ~= '') and (P .. 'pq:' .. t[4]) or (P .. 'q:' .. t[2])
redis.call('ZADD', zkey, 'XX', score, tid)
redis.call('HSET', key, 'priority', priority, 'boost', tostring(boost), 'score', score)
redis.call('SADD', P .. 'dirty', t[2])
log('priority', t[2], tid, '', {'priority', priority, 'from', t[5] or 'normal'})
return reply({ok = true})
"""

# ARGV[5..]: ticket, customer, at
CALLBACK = r"""
local tid, customer, at = ARGV[5], ARGV[6], ARGV[7]
local key = P .. 't:' .. tid
local t = redis.call('HMGET', key, 'state', 'customer', 'queue', 'callback_offer', 'pq')
if not t[1] or t[2] ~= customer then return fail('no_ticket') end
if t[1] ~= 'waiting' or (t[5] and t[5] ~= '') then return fail('not_waiting') end
if t[4] ~= '1' then return fail('no_callback_offer') end
redis.call('ZREM', P .. 'q:' .. t[3], tid)
redis.call('HSET', key, 'state', 'callback', 'callback_at', at)
redis.call('ZADD', P .. 'due:callback', at, tid)
redis.call('SADD', P .. 'dirty', t[3])
log('callback', t[3], tid, '', {'action', 'book', 'callback_at', at})
return reply({ok = true})
"""

# ARGV[5..]: teller, ticket ('' = the teller's current one), transfer target queue ('' = none),
#            transfer target teller ('' = none)
CALL_ENDED = r"""
local teller, tid, to_q, to_u = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local tk = P .. 'u:' .. teller
local u = redis.call('HMGET', tk, 'state', 'ticket', 'accepted_at')
if u[1] ~= 'busy' or (tid ~= '' and u[2] ~= tid) then return fail('not_busy') end
tid = u[2]
local key = P .. 't:' .. tid
local q = redis.call('HGET', key, 'queue')
if to_q ~= '' and redis.call('EXISTS', P .. 'qs:' .. to_q) == 0 then return fail('no_queue') end
if to_u ~= '' and (to_u == teller or redis.call('EXISTS', P .. 'u:' .. to_u) == 0) then return fail('no_teller') end
local handle = fmt(now - tonumber(u[3]))
roll_day(tk)
redis.call('HINCRBYFLOAT', tk, 'handle_s', handle)
local made = {}
if to_q ~= '' or to_u ~= '' then
  log('transfer', q, tid, teller, {'handle_s', handle, 'to_queue', to_q, 'to_teller', to_u})
  local nq = to_q ~= '' and to_q or q
  local score = redis.call('HGET', key, 'score')
  redis.call('HSET', key, 'state', 'waiting', 'queue', nq, 'teller', '', 'pq', to_u, 'accepted_at', '')
  redis.call('HINCRBY', key, 'transfers', 1)
  if to_u ~= '' then redis.call('ZADD', P .. 'pq:' .. to_u, score, tid)
  else redis.call('ZADD', P .. 'q:' .. nq, score, tid) end
  redis.call('SADD', P .. 'dirty', nq)
  log('enter', nq, tid, '', {'transfer', '1'})
else
  redis.call('HSET', key, 'state', 'done', 'ended', NOW_S)
  log('complete', q, tid, teller, {'handle_s', handle})
end
local wrap = tonumber(redis.call('HGET', P .. 'qs:' .. q, 'wrapup_s') or '0')
redis.call('HSET', tk, 'state', 'wrap_up', 'since', NOW_S, 'ticket', '', 'wrapup_until', fmt(now + wrap))
if wrap <= 0 then
  finish_wrapup(teller, false, '', made)
else
  redis.call('ZADD', P .. 'due:wrapup', fmt(now + wrap), teller)
end
if to_u ~= '' and state_of(to_u) == 'ready' then match_teller(to_u, made) end
if to_q ~= '' then
  local skill = redis.call('HGET', P .. 'qs:' .. to_q, 'skill')
  match(skill_queues(skill), 1, made)
end
return reply({ok = true, ticket_id = tid, made = made, teller = teller_raw(teller)})
"""

# ARGV[5..]: teller, '1' to go not-ready, reason
WRAPUP_DONE = r"""
local teller, not_ready, reason = ARGV[5], ARGV[6] == '1', ARGV[7]
if state_of(teller) ~= 'wrap_up' then return fail('not_wrap_up') end
local made = {}
finish_wrapup(teller, not_ready, reason, made)
return reply({ok = true, made = made, teller = teller_raw(teller)})
"""

# ARGV[5..]: teller, ticket, reason. The call could not start (no video node...): the ticket goes
# back to its old place and the teller to not-ready, as if the offer had been declined.
UNDO_ACCEPT = r"""
local teller, tid, reason = ARGV[5], ARGV[6], ARGV[7]
local tk = P .. 'u:' .. teller
local u = redis.call('HMGET', tk, 'state', 'ticket')
if u[1] ~= 'busy' or u[2] ~= tid then return fail('not_busy') end
roll_day(tk)
redis.call('HINCRBY', tk, 'calls', -1)
local q = put_back(tid)
make_not_ready(teller, reason)
local enq = tonumber(redis.call('HGET', P .. 't:' .. tid, 'enq'))
log('decline', q, tid, teller, {'reason', reason, 'waited_s', fmt(now - enq)})
local made = {}
local pq = redis.call('HGET', P .. 't:' .. tid, 'pq')
if not (pq and pq ~= '') then match(skill_queues(redis.call('HGET', P .. 'qs:' .. q, 'skill')), 1, made) end
return reply({ok = true, made = made})
"""
