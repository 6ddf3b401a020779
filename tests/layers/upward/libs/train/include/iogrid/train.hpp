// A library header (the target of an upward include).
