fn main() {
    let config = zonedrop::config::Config::load(std::path::Path::new("zonedrop.toml")).unwrap();
    let s = zonedrop::zone::Sources::new(&config).unwrap();
    let a = s.assemble("example.test.", &[]).unwrap();
    let text = a.with_serial(1);
    println!("{text}");
    let r = hickory_proto::serialize::txt::Parser::new(text.as_str(), None, None).parse();
    match r { Ok((_, m)) => println!("ok {}", m.len()), Err(e) => println!("err {e}") }
}
