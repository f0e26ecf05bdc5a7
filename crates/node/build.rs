//! Sets the linker flags a Node-API addon needs (symbols resolved by node at load time).

fn main() {
    napi_build::setup();
}
