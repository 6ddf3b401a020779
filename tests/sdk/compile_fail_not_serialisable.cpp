// Must NOT compile: NotSerialisable has no IOGRID_SERIALIZE and no Codec.
#include <iogrid/iogrid.hpp>

struct NotSerialisable {
  int x;
};
NotSerialisable make() { return {}; }
IOGRID_REMOTE(make);

int main() { auto r = iogrid::task(make).remote(); (void)r; }
