-- memex PostgreSQL schema 8: no change to the tables (the number is kept free; versions
-- are applied in order and without gaps).
SELECT 1;
