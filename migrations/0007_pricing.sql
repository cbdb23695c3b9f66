-- Pricing, second edition: names as users write them, prices that depend on the prompt's size, audio, and a cap
-- on any single hold. Replaces find_model, estimate and usage_cost of 0003.

-- A model name and every shorter name left after dropping leading "provider/" segments, longest first:
-- "openrouter/openai/gpt-4o" → {openrouter/openai/gpt-4o, openai/gpt-4o, gpt-4o}.
create function spendgate.model_name_candidates(p_name text) returns text[]
language sql immutable as $$
  select array_agg(array_to_string(parts[i:], '/') order by i)
    from string_to_array(p_name, '/') parts, generate_subscripts(parts, 1) i
$$;

-- Price-table lookup: the longest candidate name that has an entry, so a table holding both
-- "openrouter/openai/gpt-4o" and "gpt-4o" prices each route as its own.
create or replace function spendgate.find_model(p_name text) returns table (name text, entry jsonb)
language sql stable as $$
  select m.name, m.entry from spendgate.models m
   where m.name = any (spendgate.model_name_candidates(p_name))
   order by length(m.name) desc
   limit 1
$$;

-- The entry as priced for a prompt of p_prompt_tokens (input, cached or not): a whole request is billed at one tier,
-- chosen by its prompt size, so the tier's rates replace the base ones for every token of it.
--   tiered_pricing: [{range: [lo, hi], input_cost_per_token, ...}] — the first tier whose hi the prompt does not
--     pass; a prompt past every range takes the last tier.
--   <field>_above_<N>k_tokens: replaces <field> when the prompt has more than N×1000 tokens; the highest N passed
--     wins.
-- The result says which tier it chose under "price_tier" (null: the base prices).
create function spendgate.tier_entry(p_entry jsonb, p_prompt_tokens numeric) returns jsonb
language plpgsql immutable as $$
declare
  tiers jsonb := p_entry -> 'tiered_pricing';
  tier jsonb;
  tier_no bigint;
  above record;
  result jsonb := p_entry;
  chosen text;
begin
  if p_entry is null then return null; end if;
  if jsonb_typeof(tiers) = 'array' and jsonb_array_length(tiers) > 0 then
    select t, ord into tier, tier_no
      from jsonb_array_elements(tiers) with ordinality x(t, ord)
     order by coalesce(p_prompt_tokens > (t -> 'range' ->> 1)::numeric, true), ord
     limit 1;
    if coalesce(p_prompt_tokens > (tier -> 'range' ->> 1)::numeric, true) then
      select t, ord into tier, tier_no from jsonb_array_elements(tiers) with ordinality x(t, ord) order by ord desc limit 1;
    end if;
    result := result || (tier - 'range');
    chosen := format('tiered_pricing[%s]', tier_no - 1);
  end if;
  for above in
    select m[1] as base, m[2] as thousands, m[2]::numeric * 1000 as threshold, e.value
      from jsonb_each(p_entry) e, regexp_match(e.key, '^(.+)_above_(\d+)k_tokens$') m
     where p_prompt_tokens > m[2]::numeric * 1000
     order by threshold
  loop
    result := jsonb_set(result, array[above.base], above.value);
    chosen := format('above_%sk_tokens', above.thousands);
  end loop;
  return result || jsonb_build_object('price_tier', chosen);
end $$;

drop function spendgate.estimate(jsonb, jsonb, jsonb, numeric);

-- The worst-case cost and tokens of a call, from the price-table entry (null when the model is unknown), what the
-- request body said (p_req: input_tokens, input_counter, unsized_parts, max_output_tokens, n, size, characters)
-- and the caller's own estimate (cost, tokens, seconds). A price the entry lacks is unknown, never 0: the call then
-- holds p_fallback. p_max_hold, when set, bounds the result whatever it came from.
--
-- Each number says where it came from: source (the cost: request, caller, fallback), output_tokens_source
-- (max_tokens: the request's own limit; model_max: clamped to the model's max_output_tokens; default: 16384
-- for a request without one), price_tier, and capped (true when p_max_hold cut the cost).
create function spendgate.estimate(p_entry jsonb, p_req jsonb, p_caller jsonb, p_fallback numeric,
                                   p_max_hold numeric)
returns jsonb language plpgsql stable as $$
declare
  mode text := p_entry ->> 'mode';
  n integer := coalesce((p_req ->> 'n')::integer, 1);
  max_out bigint := coalesce((p_entry ->> 'max_output_tokens')::numeric::bigint, 16384);
  asked_out bigint := (p_req ->> 'max_output_tokens')::bigint;
  -- Parts of unknown size (images, files) count as a whole context window.
  context bigint := coalesce((p_entry ->> 'max_input_tokens')::numeric::bigint, 128000);
  input_tokens bigint := coalesce((p_req ->> 'input_tokens')::bigint, 0);
  output_tokens bigint := 0;
  output_source text;
  seconds numeric := (p_caller ->> 'seconds')::numeric;
  priced jsonb;
  per_image numeric;
  pixels numeric;
  cost numeric;
  source text := 'request';
  capped boolean := false;
begin
  if p_req is null then
    -- Only the caller's estimate to go by.
    null;
  elsif mode in ('image_generation', 'image_edit') then
    -- One per-image price, never the sum of input and output ones.
    per_image := coalesce(spendgate.price(p_entry, 'output_cost_per_image'),
                          spendgate.price(p_entry, 'input_cost_per_image'));
    if per_image is null then
      pixels := coalesce(split_part(p_req ->> 'size', 'x', 1)::numeric * split_part(p_req ->> 'size', 'x', 2)::numeric,
                         1024 * 1024);
      per_image := pixels * coalesce(spendgate.price(p_entry, 'output_cost_per_pixel'),
                                     spendgate.price(p_entry, 'input_cost_per_pixel'));
    end if;
    cost := n * per_image;
  elsif mode = 'audio_transcription' then
    -- Billed by the audio's length, which only the caller knows (the file is not in a JSON body).
    input_tokens := 0;
    cost := spendgate.priced(seconds, coalesce(spendgate.price(p_entry, 'input_cost_per_second'),
                                               spendgate.price(p_entry, 'output_cost_per_second')));
  elsif mode = 'audio_speech' and (p_entry ? 'input_cost_per_character' or p_entry ? 'output_cost_per_second') then
    -- Text to speech: by the characters read, or by the seconds spoken when that is how the model is billed.
    input_tokens := 0;
    cost := case when p_entry ? 'input_cost_per_character'
                 then spendgate.priced((p_req ->> 'characters')::numeric, spendgate.price(p_entry, 'input_cost_per_character'))
                 else spendgate.priced(seconds, spendgate.price(p_entry, 'output_cost_per_second')) end;
  elsif mode in ('embedding', 'moderation', 'rerank') then
    priced := spendgate.tier_entry(p_entry, input_tokens);
    cost := spendgate.priced(input_tokens, spendgate.price(priced, 'input_cost_per_token'));
  else
    input_tokens := input_tokens + coalesce((p_req ->> 'unsized_parts')::bigint, 0) * context;
    if p_entry ? 'max_input_tokens' then input_tokens := least(input_tokens, context); end if;
    output_tokens := n * least(coalesce(asked_out, 16384), max_out);
    output_source := case when asked_out is null and max_out >= 16384 then 'default'
                          when asked_out is not null and asked_out <= max_out then 'max_tokens'
                          else 'model_max' end;
    priced := spendgate.tier_entry(p_entry, input_tokens);
    cost := spendgate.priced(input_tokens, spendgate.price(priced, 'input_cost_per_token'))
          -- The higher of the output and reasoning rates; no output rate means the output price is unknown.
          + spendgate.priced(output_tokens,
                             spendgate.price(priced, 'output_cost_per_token')
                             + greatest(coalesce(spendgate.price(priced, 'output_cost_per_reasoning_token')
                                                 - spendgate.price(priced, 'output_cost_per_token'), 0), 0));
  end if;
  if cost is null and p_req is not null then
    cost := p_fallback;
    source := 'fallback';
  end if;
  if p_caller ->> 'cost' is not null then
    cost := (p_caller ->> 'cost')::numeric;
    source := 'caller';
  end if;
  if cost > p_max_hold then
    cost := p_max_hold;
    capped := true;
  end if;
  return jsonb_strip_nulls(jsonb_build_object(
    'cost', cost,
    'input_tokens', input_tokens,
    'input_counter', case when input_tokens > 0 then p_req ->> 'input_counter' end,
    'output_tokens', output_tokens,
    'output_tokens_source', output_source,
    'source', source,
    'price_tier', priced ->> 'price_tier',
    'capped', case when capped then true end,
    'caller_tokens', (p_caller ->> 'tokens')::bigint,
    -- A request without max_tokens gets its output token hold capped (see token_hold).
    'output_cap_allowed', p_req is not null and asked_out is null));
end $$;

-- The cost of a usage (normalized: input_tokens, cache_read_tokens, cache_creation_tokens, output_tokens,
-- reasoning_tokens, seconds, characters) plus images, at the entry's prices for the tier the prompt falls in.
-- Cached tokens are priced at their own rate (the input rate when the entry has none) and not again at the input
-- rate. Null when a price it needs is unknown.
create or replace function spendgate.usage_cost(p_entry jsonb, p_usage jsonb, p_images integer) returns numeric
language plpgsql immutable as $$
declare
  u jsonb := coalesce(p_usage, '{}');
  prompt numeric := coalesce((u ->> 'input_tokens')::numeric, 0) + coalesce((u ->> 'cache_read_tokens')::numeric, 0)
                    + coalesce((u ->> 'cache_creation_tokens')::numeric, 0);
  e jsonb := spendgate.tier_entry(p_entry, prompt);
  input_rate numeric := spendgate.price(e, 'input_cost_per_token');
  output_rate numeric := spendgate.price(e, 'output_cost_per_token');
  tokens numeric := 0;
begin
  if p_usage is not null then
    tokens := spendgate.priced((u ->> 'input_tokens')::bigint, input_rate)
      + spendgate.priced((u ->> 'cache_read_tokens')::bigint,
                         coalesce(spendgate.price(e, 'cache_read_input_token_cost'), input_rate))
      + spendgate.priced((u ->> 'cache_creation_tokens')::bigint,
                         coalesce(spendgate.price(e, 'cache_creation_input_token_cost'), input_rate))
      + spendgate.priced((u ->> 'output_tokens')::bigint - (u ->> 'reasoning_tokens')::bigint, output_rate)
      + spendgate.priced((u ->> 'reasoning_tokens')::bigint,
                         coalesce(spendgate.price(e, 'output_cost_per_reasoning_token'), output_rate))
      + spendgate.priced(coalesce((u ->> 'seconds')::numeric, 0),
                         case when e ->> 'mode' = 'audio_speech'
                              then coalesce(spendgate.price(e, 'output_cost_per_second'), spendgate.price(e, 'input_cost_per_second'))
                              else coalesce(spendgate.price(e, 'input_cost_per_second'), spendgate.price(e, 'output_cost_per_second')) end)
      + spendgate.priced(coalesce((u ->> 'characters')::numeric, 0), spendgate.price(e, 'input_cost_per_character'));
  end if;
  return tokens + spendgate.priced(coalesce(p_images, 0),
                                   coalesce(spendgate.price(e, 'output_cost_per_image'),
                                            spendgate.price(e, 'input_cost_per_image')));
end $$;
