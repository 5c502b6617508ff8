-- A deployment's public IPv4 comes from its farm's pool, so "has a free
-- public IPv4" is a farm figure the grid proxy reports on every node item.
ALTER TABLE node_catalog ADD COLUMN farm_free_ips integer NOT NULL DEFAULT 0;
CREATE INDEX node_catalog_farm_free_ips ON node_catalog (farm_free_ips, node_id) WHERE farm_free_ips > 0;
