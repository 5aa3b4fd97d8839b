//! Payment gateways: what the connector charges through (filled in by the gateway work).
