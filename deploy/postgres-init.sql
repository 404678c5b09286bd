-- One PostgreSQL, three databases: the product's and Temporal's two (history and visibility).
CREATE DATABASE refunds;
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
