fn main() {
    println!("bitnet-gguf");
}
