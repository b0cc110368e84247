-- The client's API vocabulary for a lead's intent: buyer -> buyer_intent, seller ->
-- seller_intent, both -> buyer_and_seller_intent, renter -> renter_intent, unknown ->
-- unknown_intent. The code still reads the short forms (events already on Kafka, outbox
-- bodies), but stored results are rewritten so the API and SQL reports show one vocabulary.
CREATE TEMPORARY TABLE intent_vocabulary (old text PRIMARY KEY, new text NOT NULL) ON COMMIT DROP;
INSERT INTO intent_vocabulary VALUES
    ('buyer', 'buyer_intent'), ('seller', 'seller_intent'), ('both', 'buyer_and_seller_intent'),
    ('renter', 'renter_intent'), ('unknown', 'unknown_intent');

UPDATE qualifications q SET result = jsonb_set(q.result, '{intent}', to_jsonb(v.new))
  FROM intent_vocabulary v WHERE q.result ->> 'intent' = v.old;

-- Webhooks not yet delivered go out in the new vocabulary; what was already sent stays as sent
-- (the delivery log shows the exact payload).
UPDATE webhook_messages m SET payload = jsonb_set(m.payload, '{data,intent}', to_jsonb(v.new))
  FROM intent_vocabulary v
 WHERE m.event_type = 'lead.qualified' AND m.payload #>> '{data,intent}' = v.old
   AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = m.id AND d.status = 'pending');

-- Each organisation's booking link, shown as the qualify answer's schedule_showing_url:
-- a URL template where {lead_id} stands for the lead's id (set with `jorge orgs set-booking-url`).
ALTER TABLE organizations ADD COLUMN schedule_showing_url text;
