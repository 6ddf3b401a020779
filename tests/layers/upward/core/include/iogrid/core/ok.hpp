// A core header (allowed from the runtime).
