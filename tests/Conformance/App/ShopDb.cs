using LinqToDB;
using LinqToDB.Data;
using LinqToDB.Mapping;

namespace Linq2DbTestKit.Conformance.App;

/// <summary>The application's own context, as an application would write it: the kit never sees its source.</summary>
public sealed class ShopDb : DataConnection
{
    public ShopDb(DataOptions options)
        : base(options)
    {
    }

    public ShopDb(DataOptions<ShopDb> options)
        : base(options.Options)
    {
    }

    public ITable<Item> Items => this.GetTable<Item>();

    public ITable<ItemNote> Notes => this.GetTable<ItemNote>();
}

[Table("items")]
public sealed class Item
{
    [Column("id"), PrimaryKey, Identity]
    public long Id { get; set; }

    [Column("name"), NotNull]
    public required string Name { get; set; }

    [Column("quantity")]
    public int Quantity { get; set; }

    [Association(ThisKey = nameof(Id), OtherKey = nameof(ItemNote.ItemId))]
    public List<ItemNote> Notes { get; set; } = [];
}

[Table("item_notes")]
public sealed class ItemNote
{
    [Column("id"), PrimaryKey, Identity]
    public long Id { get; set; }

    [Column("item_id")]
    public long ItemId { get; set; }

    [Column("text"), NotNull]
    public required string Text { get; set; }
}
