// CZeroMQ: the libzmq C API, seen only by PaintsTransport.
#include <zmq.h>
