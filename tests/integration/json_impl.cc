// Boost.JSON, header-only: compiled once here for the tests.
#include <boost/json/src.hpp>
