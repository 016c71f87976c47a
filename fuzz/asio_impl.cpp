// Asio compiled once for the fuzz targets, without the SSL layer src/asio_impl.cpp adds: no
// target uses TLS, and this unit builds in a fraction of the time.
#include <boost/asio/impl/src.hpp>
